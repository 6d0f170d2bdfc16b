// Playback: up to 4 cameras on one day's timeline (the player is recorded.js);
// every track has the start of the shown day as its base, so they play the same
// recorded moment when their currentTime agree.

import { t } from "/static/i18n.js";
import { DAY, Track, dayStart, json } from "/static/recorded.js";

const $ = (id) => document.getElementById(id);

class Playback {
  constructor() {
    this.tracks = [];
    this.motion = [];
    this.rate = 1;
    this.paused = false;
  }

  async start(cameras, at) {
    const base = dayStart(at);
    this.base = base;
    const grid = $("grid");
    grid.className = `n${cameras.length}`;
    grid.replaceChildren();
    for (const t of this.tracks) t.close();
    this.tracks = cameras.map((camera) => {
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.innerHTML = '<video muted playsinline></video><span class="label"></span><span class="note"></span>';
      tile.querySelector(".label").textContent = camera;
      grid.append(tile);
      const track = new Track(camera, base, tile);
      track.firstMoment = at;
      return track;
    });
    await Promise.all(this.tracks.map((t) => t.open()));
    await this.loadMotion();
    this.drawTimeline();
    await this.seek(at);
    clearInterval(this.timer);
    this.timer = setInterval(() => this.tick(), 250);
  }

  async seek(at) {
    await Promise.all(this.tracks.map((t) => t.seek(at)));
    for (const t of this.tracks) t.video.playbackRate = this.rate;
    if (!this.paused) await Promise.all(this.tracks.map((t) => t.video.play().catch(() => {})));
  }

  wallTime() { return this.tracks.length ? this.tracks[0].wall() : null; }

  setRate(rate) {
    this.rate = rate;
    for (const t of this.tracks) t.video.playbackRate = rate;
  }

  toggle() {
    this.paused = !this.paused;
    for (const t of this.tracks) this.paused ? t.video.pause() : t.video.play().catch(() => {});
  }

  step(seconds) { return this.seek(this.wallTime() + seconds); }

  // Motion periods of the shown cameras that day, oldest first (marks, and jumps).
  async loadMotion() {
    const lists = await Promise.all(this.tracks.map((track) => {
      const cam = encodeURIComponent(track.camera);
      return json(`/api/cameras/${cam}/motion?since=${this.base}&until=${this.base + DAY}`).catch(() => []);
    }));
    this.motion = lists.flat().sort((a, b) => a.start - b.start);
  }

  // To the start of the next (or, backwards, the previous) motion period.
  async jumpMotion(forward) {
    await this.loadMotion();
    this.drawTimeline();
    const wall = this.wallTime();
    const found = forward
      ? this.motion.find((p) => p.start > wall + 0.5)
      : this.motion.findLast((p) => p.start < wall - 1.5); // a second in: still "this" one
    if (!found) { $("status").textContent = forward ? t("no_later_motion") : t("no_earlier_motion"); return; }
    $("status").textContent = "";
    await this.seek(found.start);
  }

  async tick() {
    const master = this.tracks[0];
    if (!master) return;
    for (const t of this.tracks) t.pump().catch((e) => { t.note.textContent = e.message; });
    for (const t of this.tracks.slice(1)) { // the others follow the first
      const drift = t.video.currentTime - master.video.currentTime;
      if (Math.abs(drift) > 0.3 && t.inBuffer(master.wall())) t.video.currentTime = master.video.currentTime;
    }
    const wall = master.wall();
    const clock = $("clock");
    clock.dataset.wall = wall.toFixed(3);
    clock.textContent = new Date(wall * 1000).toLocaleString("zh-CN", { hour12: false });
    const cursor = $("timeline").querySelector(".cursor");
    if (cursor) cursor.style.left = `${((wall - this.base) / DAY) * 100}%`;
  }

  drawTimeline() {
    const line = $("timeline");
    line.replaceChildren();
    const add = (cls, left, width, text = "") => {
      const el = document.createElement("div");
      el.className = cls;
      el.style.left = `${left * 100}%`;
      if (width !== null) el.style.width = `${Math.max(width * 100, 0.05)}%`;
      el.textContent = text;
      line.append(el);
    };
    for (let h = 0; h < 24; h += 2) add("hour", h / 24, null, `${h}:00`);
    for (const span of this.tracks[0].spans) {
      add("span", (span.start - this.base) / DAY, (span.end - span.start) / DAY);
    }
    for (const period of this.motion) {
      const end = period.end ?? Date.now() / 1000;
      add("motion", (period.start - this.base) / DAY, (end - period.start) / DAY);
    }
    for (const t of this.tracks) {
      for (const e of t.evidence) if (e.kind === "alarm") add("mark", (e.start - this.base) / DAY, null);
    }
    add("cursor", 0, null);
  }
}

const playback = new Playback();
window.playback = playback;

function open() {
  const cameras = $("cameras").value.split(",").map((s) => s.trim()).filter(Boolean).slice(0, 4);
  const day = $("day").valueAsDate;
  const at = playback.pendingAt ?? (day ? day.getTime() / 1000 + day.getTimezoneOffset() * 60 : Date.now() / 1000 - 3600);
  playback.pendingAt = null;
  if (!cameras.length) { $("status").textContent = "选择摄像机 choose a camera"; return; }
  history.replaceState(null, "", `?cameras=${cameras.join(",")}&at=${at.toFixed(3)}`);
  $("status").textContent = "";
  playback.start(cameras, at).catch((e) => { $("status").textContent = e.message; });
}

$("go").onclick = open;
$("toggle").onclick = () => playback.toggle();
$("back10").onclick = () => playback.step(-10);
$("fwd10").onclick = () => playback.step(10);
$("back60").onclick = () => playback.step(-60);
$("fwd60").onclick = () => playback.step(60);
$("prev-motion").onclick = () => playback.jumpMotion(false);
$("next-motion").onclick = () => playback.jumpMotion(true);
$("speed").onchange = (e) => playback.setRate(Number(e.target.value));
$("timeline").onclick = (e) => {
  const box = e.currentTarget.getBoundingClientRect();
  playback.seek(playback.base + ((e.clientX - box.left) / box.width) * DAY);
};
addEventListener("pagehide", () => { for (const t of playback.tracks) t.close(); });

const params = new URLSearchParams(location.search);
const named = params.get("cameras") || params.get("camera");
if (named) {
  $("cameras").value = named;
  if (params.get("at")) playback.pendingAt = Number(params.get("at"));
  open();
}
