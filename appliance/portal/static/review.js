// The review pages' behaviour (the CSP allows no inline script): the sessions filter, and the
// player's treatment timeline. Filtering happens here, in the page: a patient's name never
// goes into a URL.
"use strict";

(function sessionFilter() {
  const box = document.getElementById("session-filter");
  if (!box) return;
  const rows = Array.from(document.querySelectorAll("#sessions tbody tr[data-search]"));
  const count = document.getElementById("filter-count");
  function apply() {
    // DICOM names separate parts with "^": "muller zoe" should find "Müller^Zoë" too.
    const words = fold(box.value).split(/\s+/).filter(Boolean);
    let shown = 0;
    for (const row of rows) {
      const text = fold(row.dataset.search.replace(/\^/g, " "));
      const match = words.every((word) => text.includes(word));
      row.hidden = !match;
      shown += match;
    }
    count.textContent = words.length ? `${shown} of ${rows.length} sessions` : "";
  }
  box.addEventListener("input", apply);
  apply();
})();

function fold(text) {
  return text.normalize("NFD").replace(/[\u0300-\u036f]/g, "").toLowerCase();
}

(function treatmentTimeline() {
  const video = document.getElementById("player");
  const bar = document.getElementById("timeline");
  if (!video || !bar) return;
  const jumps = Array.from(document.querySelectorAll("button.jump"));
  const playhead = bar.querySelector(".playhead");
  const signed = parseFloat(bar.dataset.duration);

  function duration() {
    // The signed duration when the manifest has one (an interrupted clip's comes from the video).
    if (Number.isFinite(signed) && signed > 0) return signed;
    return Number.isFinite(video.duration) && video.duration > 0 ? video.duration : NaN;
  }

  function seek(seconds) {
    video.currentTime = Math.max(0, seconds);
  }

  function drawMarkers() {
    const length = duration();
    bar.querySelectorAll(".marker").forEach((marker) => marker.remove());
    if (!Number.isFinite(length)) return;
    jumps.forEach((button, index) => {
      const start = parseFloat(button.dataset.start);
      const end = parseFloat(button.dataset.end);
      const marker = document.createElement("button");
      marker.type = "button";
      marker.className = "marker";
      marker.dataset.start = button.dataset.start;
      marker.title = `Emission ${index + 1}`;
      marker.setAttribute("aria-label", `Jump to emission ${index + 1}`);
      marker.style.left = `${(100 * start) / length}%`;
      marker.style.width = `${Math.max(0.6, (100 * (end - start)) / length)}%`;
      marker.addEventListener("click", (event) => {
        event.stopPropagation();
        seek(start);
      });
      bar.appendChild(marker);
    });
  }

  function movePlayhead() {
    const length = duration();
    if (Number.isFinite(length)) playhead.style.left = `${Math.min(100, (100 * video.currentTime) / length)}%`;
  }

  bar.addEventListener("click", (event) => {
    const length = duration();
    if (!Number.isFinite(length)) return;
    const box = bar.getBoundingClientRect();
    seek((length * (event.clientX - box.left)) / box.width);
  });
  jumps.forEach((button) => button.addEventListener("click", () => seek(parseFloat(button.dataset.start))));
  video.addEventListener("loadedmetadata", drawMarkers);
  video.addEventListener("durationchange", drawMarkers);
  video.addEventListener("timeupdate", movePlayhead);
  video.addEventListener("seeked", movePlayhead);
  drawMarkers();
})();
