//! Who said what, stored: segment roles, speaker turns and voice profiles, and talk analytics
//! on a labelled transcript read back from the store — one story on both backends.

use salesai_core::speakers::{Diarization, Turn, Voice, VoiceProfile};
use salesai_core::talk::{self, TalkFlag, TalkTargets};
use salesai_core::transcript::{Attribution, Role, Segment};
use salesai_db::story;
use salesai_db::testing::TestDb;

use super::new_conversation;

fn line(speaker: &str, role: Role, start_s: u64, end_s: u64, text: &str) -> Segment {
    Segment {
        speaker: Some(speaker.into()),
        role: Some(role),
        attribution: Some(Attribution::Known),
        confidence: Some(100),
        ..Segment::said(start_s * 1000, end_s * 1000, text)
    }
}

story!(speakers_roles_and_talk_analytics_round_trip);
async fn speakers_roles_and_talk_analytics_round_trip(db: &TestDb) {
    let store = db.store();
    let call = store
        .create_conversation(new_conversation("TALK-1", None))
        .await
        .unwrap();
    // A labelled 10-minute call with known answers: the rep talks 60 % of the time (6 of the
    // 10 minutes) and opens with a 3-minute monologue; an overlap nobody is placed on.
    let mut segments = vec![
        line(
            "業務",
            Role::Rep,
            0,
            180,
            "我們的系統可以幫您把訂單直接送到廚房，我先介紹功能和價格。",
        ),
        line(
            "老闆",
            Role::Customer,
            181,
            300,
            "我們店裡現在都是手寫單，晚上常常掉單。",
        ),
    ];
    for n in 0..3u64 {
        let t = 300 + n * 100;
        segments.push(line(
            "業務",
            Role::Rep,
            t,
            t + 60,
            "一個禮拜大概會掉幾張單？",
        ));
        segments.push(line(
            "老闆",
            Role::Customer,
            t + 60,
            t + 100,
            "我們大概掉十張。",
        ));
    }
    segments.push(Segment {
        attribution: Some(Attribution::Uncertain),
        confidence: Some(20),
        ..Segment::said(600_000, 600_500, "好—")
    });
    segments[3].attribution = Some(Attribution::Inferred);
    segments[3].confidence = Some(72);
    store.save_transcript(&call.id, &segments).await.unwrap();
    let back = store.get_transcript(&call.id).await.unwrap();
    assert_eq!(back, segments, "roles, attribution and confidence are kept");

    let stats = talk::analyze(&back).unwrap();
    assert_eq!(stats.rep_ms, 360_000);
    assert_eq!(stats.customer_ms, 239_000);
    assert!((stats.talk_ratio - 360.0 / 599.0).abs() < 1e-9);
    assert_eq!(stats.longest_monologue.unwrap().duration_ms, 180_000);
    assert_eq!(stats.longest_customer_story.unwrap().duration_ms, 119_000);
    assert_eq!(stats.unattributed_ms, 500);
    assert_eq!(stats.rep_questions, 3);
    assert!(stats.inferred, "one line's role was inferred");
    assert!(
        stats
            .flags(&TalkTargets::default())
            .contains(&TalkFlag::LongMonologue)
    );

    // Speaker turns and voice prints are kept whole, replaced on a second save.
    assert_eq!(store.speaker_turns(&call.id).await.unwrap(), None);
    let mut diarization = Diarization {
        turns: vec![Turn {
            start_ms: 0,
            end_ms: 1_000,
            speaker: Some(0),
            confidence: 88,
        }],
        voices: vec![Voice {
            speaker: 0,
            print: vec![0.5, -1.25],
            seconds: 1.0,
        }],
        rep_channel: None,
    };
    store
        .save_speaker_turns(&call.id, &diarization)
        .await
        .unwrap();
    diarization.rep_channel = Some(1);
    store
        .save_speaker_turns(&call.id, &diarization)
        .await
        .unwrap();
    assert_eq!(
        store.speaker_turns(&call.id).await.unwrap(),
        Some(diarization)
    );

    let rep = store
        .find_or_create_user(Some("rep@example.com"), None, "Rep")
        .await
        .unwrap();
    assert_eq!(store.voice_profile(&rep).await.unwrap(), None);
    let profile = VoiceProfile {
        print: vec![1.0, 2.0],
        seconds: 42.4,
        calls: 1,
    };
    store.save_voice_profile(&rep, &profile).await.unwrap();
    let learned = VoiceProfile::learn(
        Some(profile.clone()),
        &Voice {
            speaker: 0,
            print: vec![3.0, 2.0],
            seconds: 10.0,
        },
    );
    store.save_voice_profile(&rep, &learned).await.unwrap();
    assert_eq!(store.voice_profile(&rep).await.unwrap(), Some(learned));
}
