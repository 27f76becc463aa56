// salesai's only script: progressive enhancement. Every page works without it.
// - transcript lines and quotes seek the recording; the playing line is highlighted
// - a call still in the pipeline reloads itself when its status changes
(function () {
  "use strict";
  function ready(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }
  ready(function () {
    var audio = document.getElementById("audio");
    var lines = Array.prototype.slice.call(document.querySelectorAll("#transcript li[data-t]"));
    // A line's start, seconds, from its m:ss or h:mm:ss label.
    var starts = lines.map(function (li) {
      return li.getAttribute("data-t").split(":").reduce(function (acc, part) { return acc * 60 + Number(part); }, 0);
    });
    if (audio) {
      var seek = function (seconds, li) {
        audio.currentTime = seconds;
        var playing = audio.play();
        if (playing && playing.catch) playing.catch(function () {});
        if (li && history.replaceState) history.replaceState(null, "", location.pathname + "?t=" + Math.floor(seconds));
      };
      document.addEventListener("click", function (e) {
        if (!e.target.closest) return;
        var link = e.target.closest("[data-seek]");
        if (link) {
          e.preventDefault();
          seek(Number(link.getAttribute("data-seek")) / 1000, null);
          return;
        }
        var li = e.target.closest("#transcript li[data-t]");
        if (li && !window.getSelection().toString()) seek(starts[lines.indexOf(li)], li);
      });
      var current = null;
      audio.addEventListener("timeupdate", function () {
        var now = audio.currentTime + 0.05;
        var found = null;
        for (var i = 0; i < lines.length; i++) {
          if (starts[i] > now) break;
          found = lines[i];
        }
        if (found === current) return;
        if (current) current.classList.remove("current");
        current = found;
        if (current) {
          current.classList.add("current");
          var list = current.parentElement;
          if (list && list.scrollHeight > list.clientHeight) {
            list.scrollTop = current.offsetTop - list.offsetTop - list.clientHeight / 3;
          }
        }
      });
      lines.forEach(function (li) { li.classList.add("seekable"); });
    }
    var live = document.getElementById("live");
    if (live && window.fetch) {
      var url = live.getAttribute("data-status-url");
      var seen = live.getAttribute("data-status");
      var poll = function () {
        fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (body) {
            if (body && body.status && body.status !== seen) location.reload();
            else setTimeout(poll, 3000);
          })
          .catch(function () { setTimeout(poll, 6000); });
      };
      setTimeout(poll, 3000);
    }
    var copy = document.querySelector("input.copy");
    if (copy) { copy.focus(); copy.select(); }
  });
})();

// Upload: the product line picker reloads the form; the upload shows its progress.
(function () {
  "use strict";
  document.addEventListener("change", function (e) {
    if (e.target && e.target.hasAttribute && e.target.hasAttribute("data-autosubmit")) e.target.form.submit();
  });
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (form.id !== "upload" || !window.XMLHttpRequest || !window.FormData) return;
    e.preventDefault();
    var bar = document.getElementById("upload-progress");
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    if (bar) bar.hidden = false;
    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.upload.addEventListener("progress", function (p) {
      if (p.lengthComputable && bar) bar.value = Math.round((p.loaded / p.total) * 100);
    });
    xhr.addEventListener("load", function () {
      if (xhr.responseURL && xhr.status < 400) { location.href = xhr.responseURL; return; }
      document.open(); document.write(xhr.responseText); document.close();
    });
    xhr.addEventListener("error", function () {
      if (button) button.disabled = false;
      if (bar) bar.hidden = true;
      alert(document.documentElement.lang === "en" ? "The upload was interrupted. Try again." : "上傳中斷，請再試一次。");
    });
    xhr.send(new FormData(form));
  });
})();
