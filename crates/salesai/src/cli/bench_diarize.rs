//! `salesai bench diarize`: the diarization error rate and the rep/customer role accuracy on
//! calls with known truth.
//!
//! Each call is synthesised with espeak-ng as a stereo recording, one speaker per channel (the
//! rep on the left), from lines a rep and a customer would say — English and Traditional
//! Chinese, with cross-talk (the next speaker starting before the last one stops), short turns
//! ("Yes.", "嗯嗯。") and backchannels over the other's line. The channels are the truth; the
//! mono mix-down goes through the worker's own preparation and diarization, and the transcript
//! lines (with their true times but no speakers) through its role placement.
//!
//! DER follows the usual definition with no forgiveness collar: missed speech, false alarm and
//! speaker confusion over the reference's speaking time, under the best mapping of found
//! speakers to true ones. Speech salesai marked uncertain counts as missed.

use std::process::ExitCode;

use salesai_core::speakers::{self, RoleHints};
use salesai_core::transcript::{Role, Segment};
use serde::Serialize;

use super::output::print_json;

/// The synthesis rate (espeak-ng's own).
const RATE: usize = 22_050;

/// One call's figures.
#[derive(Debug, Serialize)]
pub struct CallResult {
    name: String,
    language: &'static str,
    voices: String,
    seconds: f64,
    speakers_found: usize,
    der: f64,
    missed: f64,
    /// The part of `missed` no one-voice-at-a-time answer can find (two talking at once).
    overlap: f64,
    false_alarm: f64,
    confusion: f64,
    uncertain_share: f64,
    role_accuracy: f64,
    diarize_ms: u64,
}

struct Script {
    language: &'static str,
    rep: &'static [&'static str],
    customer: &'static [&'static str],
    rep_short: &'static [&'static str],
    customer_short: &'static [&'static str],
}

const ENGLISH: Script = Script {
    language: "en",
    rep: &[
        "Thanks for making the time today. Could you walk me through how you take orders right now?",
        "How many people on your team touch each order before it goes out?",
        "That sounds painful. What does a mis-shipped order cost you?",
        "Our platform prints every ticket straight to the kitchen, so nothing gets lost.",
        "We can connect it to your accounting software in about a day.",
        "Who else would be involved in deciding on a tool like this?",
        "What would it mean for you if those errors went away next quarter?",
        "Let me show you how the dashboard tracks every order in real time.",
        "Our pricing starts at forty nine dollars per location per month.",
        "Would it help if I set up a two week trial for your busiest store?",
        "When would you want something like this running by?",
        "Can we book thirty minutes with your operations manager next Tuesday?",
    ],
    customer: &[
        "Right now we write every order by hand, and on busy nights the kitchen loses tickets.",
        "We have three stores and about forty staff, and honestly the evenings are chaos.",
        "Last month we refunded around two thousand dollars because of wrong orders.",
        "My partner handles the money, so she would need to see the numbers first.",
        "We tried another system two years ago, but it was too slow for our cooks.",
        "Our budget for this year is pretty tight, maybe a few hundred a month.",
        "The main thing for us is that the staff can learn it in one shift.",
        "We are opening a fourth location in March, so timing really matters.",
        "I spend every Sunday night reconciling orders against the bank statement.",
        "If it really works with our accounting, that would save me hours every week.",
    ],
    rep_short: &["Mm-hmm.", "Got it.", "Right.", "I see."],
    customer_short: &["Yes.", "Sure.", "Okay.", "Exactly."],
};

const CHINESE: Script = Script {
    language: "zh-TW",
    rep: &[
        "謝謝您今天撥空，想請問您現在是怎麼接單的？",
        "店裡大概有幾位員工會經手每一張訂單？",
        "聽起來很辛苦，一張送錯的單大概會損失多少？",
        "我們的系統可以直接把單子印到廚房，不會再漏單。",
        "我們可以在一天之內幫您串接會計軟體。",
        "除了您之外，還有誰會參與決定？",
        "如果下一季這些錯誤都消失了，對您的意義是什麼？",
        "我幫您示範一下後台怎麼即時追蹤每一張單。",
        "我們的方案每家店每個月一千五百元起。",
        "要不要先在您最忙的那家店試用兩個禮拜？",
        "您希望什麼時候可以上線？",
        "下週二可以約您的店長一起開個三十分鐘的會嗎？",
    ],
    customer: &[
        "我們現在都是手寫單，生意好的時候廚房常常掉單。",
        "我們有三家店，四十幾個員工，晚上真的很亂。",
        "上個月因為送錯餐，大概退了六萬塊。",
        "錢是我老婆在管，她要先看過數字。",
        "我們兩年前用過別家的系統，可是太慢了，廚師都不想用。",
        "今年預算比較緊，一個月大概幾千塊吧。",
        "對我們來說最重要的是員工一個班就能學會。",
        "我們三月要開第四家店，所以時間很重要。",
        "我每個禮拜天晚上都在對帳，對到半夜。",
        "如果真的可以跟會計軟體串起來，可以幫我省很多時間。",
    ],
    rep_short: &["嗯嗯。", "了解。", "對。", "好的。"],
    customer_short: &["好。", "是。", "對啊。", "沒錯。"],
};

/// The calls: (script, rep voice, customer voice). Same-gender pairs are the hard ones.
const CALLS: &[(&Script, &str, &str)] = &[
    (&ENGLISH, "en-us+m3", "en-gb+f3"),
    (&ENGLISH, "en-us+m1", "en-us+m7"),
    (&ENGLISH, "en-gb+f2", "en-us+m5"),
    (&ENGLISH, "en-us+f4", "en-us+f1"),
    (&CHINESE, "cmn+m3", "cmn+f3"),
    (&CHINESE, "cmn+m1", "cmn+m6"),
    (&CHINESE, "cmn+f2", "cmn+m2"),
    (&CHINESE, "cmn+f4", "cmn+f1"),
];

/// A small deterministic generator, so every run makes the same calls.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Speech from espeak-ng: 16-bit mono samples at [`RATE`].
fn speak(voice: &str, text: &str) -> anyhow::Result<Vec<f32>> {
    let out = std::process::Command::new("espeak-ng")
        .args(["-v", voice, "-s", "165", "--stdout", text])
        .output()
        .map_err(|e| {
            anyhow::anyhow!("espeak-ng could not run ({e}); install it (apt-get install espeak-ng)")
        })?;
    anyhow::ensure!(
        out.status.success(),
        "espeak-ng failed for voice {voice}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = out
        .stdout
        .windows(4)
        .position(|w| w == b"data")
        .map(|p| p + 8)
        .ok_or_else(|| anyhow::anyhow!("espeak-ng wrote no WAV data"))?;
    Ok(out.stdout[data..]
        .chunks_exact(2)
        .map(|p| f32::from(i16::from_le_bytes([p[0], p[1]])) / 32768.0)
        .collect())
}

/// One synthesised call: the two channels and the transcript lines with their true side.
struct Call {
    channels: [Vec<f32>; 2],
    lines: Vec<(Segment, Role)>,
}

fn place(channel: &mut Vec<f32>, at: usize, samples: &[f32]) {
    if channel.len() < at + samples.len() {
        channel.resize(at + samples.len(), 0.0);
    }
    for (i, s) in samples.iter().enumerate() {
        channel[at + i] += s;
    }
}

/// The part of `samples` that is not espeak-ng's leading and trailing silence.
fn trimmed(samples: &[f32]) -> (usize, usize) {
    let loud = |s: &f32| s.abs() > 0.002;
    let first = samples.iter().position(loud).unwrap_or(0);
    let last = samples.iter().rposition(loud).unwrap_or(samples.len());
    (first, last + 1)
}

fn synthesise(script: &Script, rep: &str, customer: &str, seed: u64) -> anyhow::Result<Call> {
    let mut rng = Lcg(seed);
    let mut channels = [Vec::new(), Vec::new()];
    let mut lines = Vec::new();
    let mut cursor = RATE / 2;
    let voices = [rep, customer];
    let exchanges = 14;
    for turn in 0..exchanges * 2 {
        let side = turn % 2;
        let role = if side == 0 { Role::Rep } else { Role::Customer };
        let pool = if side == 0 {
            script.rep
        } else {
            script.customer
        };
        // Now and then a turn is only a short answer.
        let text = if turn > 2 && rng.chance(15) {
            let short = if side == 0 {
                script.rep_short
            } else {
                script.customer_short
            };
            short[rng.below(short.len())]
        } else {
            pool[(turn / 2 + rng.below(3)) % pool.len()]
        };
        let speech = speak(voices[side], text)?;
        let (from, to) = trimmed(&speech);
        let speech = &speech[from..to];
        place(&mut channels[side], cursor, speech);
        let start = cursor;
        let end = cursor + speech.len();
        lines.push((
            Segment::said(
                (start * 1000 / RATE) as u64,
                (end * 1000 / RATE) as u64,
                text,
            ),
            role,
        ));
        // The listener's backchannel over a long line.
        if speech.len() > 3 * RATE && rng.chance(30) {
            let other = 1 - side;
            let short = if other == 0 {
                script.rep_short
            } else {
                script.customer_short
            };
            let text = short[rng.below(short.len())];
            let back = speak(voices[other], text)?;
            let (a, b) = trimmed(&back);
            let at = start + speech.len() / 2;
            place(&mut channels[other], at, &back[a..b]);
            lines.push((
                Segment::said(
                    (at * 1000 / RATE) as u64,
                    ((at + b - a) * 1000 / RATE) as u64,
                    text,
                ),
                if other == 0 {
                    Role::Rep
                } else {
                    Role::Customer
                },
            ));
        }
        // Cross-talk: the next speaker starts 0.4 s early; otherwise a pause of 0.2–0.9 s.
        cursor = if rng.chance(20) {
            end.saturating_sub(RATE * 2 / 5).max(start + RATE / 2)
        } else {
            end + RATE / 5 + rng.below(RATE * 7 / 10)
        };
    }
    let length = channels[0].len().max(channels[1].len()) + RATE / 2;
    for c in &mut channels {
        c.resize(length, 0.0);
    }
    lines.sort_by_key(|(s, _)| s.start_ms);
    Ok(Call { channels, lines })
}

/// Runs the benchmark.
pub async fn run(
    calls: usize,
    keep: Option<std::path::PathBuf>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let results = tokio::task::spawn_blocking(move || -> anyhow::Result<Vec<CallResult>> {
        let mut results = Vec::new();
        for (n, (script, rep, customer)) in CALLS.iter().take(calls).enumerate() {
            let call = synthesise(script, rep, customer, 7 + n as u64)?;
            let interleaved: Vec<u8> = call.channels[0]
                .iter()
                .zip(&call.channels[1])
                .flat_map(|(l, r)| {
                    let l = (l.clamp(-1.0, 1.0) * 32767.0) as i16;
                    let r = (r.clamp(-1.0, 1.0) * 32767.0) as i16;
                    [l.to_le_bytes(), r.to_le_bytes()].concat()
                })
                .collect();
            let wav = salesai_audio::pcm16_wav(2, RATE as u32, &interleaved);
            let file = tempfile::Builder::new().suffix(".wav").tempfile()?;
            std::fs::write(file.path(), &wav)?;
            if let Some(dir) = &keep {
                std::fs::create_dir_all(dir)?;
                std::fs::write(dir.join(format!("call-{n}-{}.wav", script.language)), &wav)?;
            }
            let prepared = salesai_audio::prepare(file.path(), Some("wav"))?;
            let started = std::time::Instant::now();
            let diarization = salesai_audio::diarize::diarize(&prepared)?;
            let diarize_ms = started.elapsed().as_millis() as u64;
            let der = salesai_audio::der::score(
                &salesai_audio::der::truth(&call.channels, RATE),
                &diarization.turns,
            );
            // Roles on the transcript lines: attach the voices, place them, compare with the
            // channel each line was said on.
            let mut segments: Vec<Segment> = call.lines.iter().map(|(s, _)| s.clone()).collect();
            speakers::attach(&mut segments, &diarization.turns, script.language != "en");
            speakers::assign_roles(
                &mut segments,
                &RoleHints {
                    voices: &diarization.voices,
                    ..RoleHints::default()
                },
            );
            let (mut right, mut total) = (0u64, 0u64);
            for (segment, (_, truth)) in segments.iter().zip(&call.lines) {
                let length = segment.end_ms - segment.start_ms;
                total += length;
                if segment.role == Some(*truth) {
                    right += length;
                }
            }
            results.push(CallResult {
                name: format!("call-{n}"),
                language: script.language,
                voices: format!("{rep} / {customer}"),
                seconds: prepared.duration_ms as f64 / 1000.0,
                speakers_found: diarization.voices.len(),
                der: der.total(),
                missed: der.missed,
                overlap: der.overlap,
                false_alarm: der.false_alarm,
                confusion: der.confusion,
                uncertain_share: der.uncertain,
                role_accuracy: right as f64 / total.max(1) as f64,
                diarize_ms,
            });
        }
        Ok(results)
    })
    .await??;
    let seconds: f64 = results.iter().map(|r| r.seconds).sum();
    let weighted = |f: fn(&CallResult) -> f64| {
        results.iter().map(|r| f(r) * r.seconds).sum::<f64>() / seconds.max(1e-9)
    };
    let overall = serde_json::json!({
        "calls": results.len(),
        "seconds": seconds,
        "der": weighted(|r| r.der),
        "missed": weighted(|r| r.missed),
        "overlap": weighted(|r| r.overlap),
        "false_alarm": weighted(|r| r.false_alarm),
        "confusion": weighted(|r| r.confusion),
        "role_accuracy": weighted(|r| r.role_accuracy),
    });
    if json {
        print_json(&serde_json::json!({ "calls": results, "overall": overall }))?;
    } else {
        println!(
            "{:<7} {:<6} {:<22} {:>6} {:>3} {:>6} {:>6} {:>6} {:>6} {:>6} {:>6}",
            "call", "lang", "voices", "secs", "spk", "DER", "miss", "FA", "conf", "uncert", "roles"
        );
        for r in &results {
            println!(
                "{:<7} {:<6} {:<22} {:>6.1} {:>3} {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}% {:>5.1}%",
                r.name,
                r.language,
                r.voices,
                r.seconds,
                r.speakers_found,
                r.der * 100.0,
                r.missed * 100.0,
                r.false_alarm * 100.0,
                r.confusion * 100.0,
                r.uncertain_share * 100.0,
                r.role_accuracy * 100.0
            );
        }
        println!(
            "overall: {} calls, {:.0} s; DER {:.1}% (missed {:.1}% of which {:.1}% two voices at once, false alarm {:.1}%, confusion {:.1}%); roles right on {:.1}% of speaking time",
            results.len(),
            seconds,
            overall["der"].as_f64().unwrap_or(0.0) * 100.0,
            overall["missed"].as_f64().unwrap_or(0.0) * 100.0,
            overall["overlap"].as_f64().unwrap_or(0.0) * 100.0,
            overall["false_alarm"].as_f64().unwrap_or(0.0) * 100.0,
            overall["confusion"].as_f64().unwrap_or(0.0) * 100.0,
            overall["role_accuracy"].as_f64().unwrap_or(0.0) * 100.0,
        );
    }
    Ok(ExitCode::SUCCESS)
}
