// Playback: up to 4 cameras on one day's timeline (the player is recorded.js);
// every track has the start of the shown day as its base, so they play the same
// recorded moment when their currentTime agree. The day's timeline is drawn
// whatever the moment asked holds; with no moment asked, the page opens a minute
// before the latest footage of the day; a moment with no footage offers the
// nearest recorded one. What is shown can be exported (clips.js's flow).

import { apply, clockTime, lang, t } from "/static/i18n.js";
import { exportState, runExport } from "/static/clips.js";
import { DAY, Track, dayStart, json } from "/static/recorded.js";

const $ = (id) => document.getElementById(id);
const LEAD_IN = 60; // seconds before the latest footage the page opens at
const CLICK_SLACK_PX = 4; // a click this close to footage on the timeline plays it
const EXPORT_DEFAULT = 60; // seconds exported up to the moment shown, when no start is set

class Playback {
  constructor() {
    this.tracks = [];
    this.motion = [];
    this.rate = 1;
    this.paused = false;
    this.marks = { in: null, out: null };
    this.exports = new Map(); // camera -> the state of its export
    this.notice = null; // what the status line says: {key, jump}
  }

  // Opens `cameras` on the day of `at` (or of `day`, or today); plays from `at`,
  // or, with no `at`, from a minute before the day's latest footage.
  async start(cameras, at = null, day = null) {
    for (const t of this.tracks) t.close();
    clearInterval(this.timer);
    const base = dayStart(at ?? day ?? Date.now() / 1000);
    this.base = base;
    $("day").value = localDate(base);
    this.marks = { in: null, out: null };
    this.exports.clear();
    this.say(null);
    const grid = $("grid");
    grid.className = `n${cameras.length}`;
    grid.replaceChildren();
    this.tracks = cameras.map((camera) => {
      const tile = document.createElement("div");
      tile.className = "tile";
      tile.innerHTML = '<video muted playsinline></video><span class="label"></span><span class="note"></span>';
      const label = tile.querySelector(".label");
      label.textContent = camera;
      json(`/api/cameras/${encodeURIComponent(camera)}`).then((c) => { label.textContent = c.name || camera; }, () => {});
      grid.append(tile);
      return new Track(camera, base, tile);
    });
    await Promise.all(this.tracks.map((t) => t.open()));
    await this.loadMotion();
    this.drawTimeline();
    this.timer = setInterval(() => this.tick(), 250);
    const latest = this.latest();
    if (at === null && latest === null && day === null) {
      const before = this.nearest(base);
      if (before !== null && before < base) return this.start(cameras, null, before); // the last day with footage
    }
    await this.goTo(at ?? latest ?? base);
  }

  // Plays from `at` if something is recorded then; if not, says so and offers the nearest.
  async goTo(at) {
    if (this.tracks.some((t) => t.recorded(at))) {
      this.say(null);
      return this.seek(at);
    }
    const nearest = this.nearest(at);
    const nothing = nearest === null ? "pb_nothing_at_all" : this.latest() === null ? "pb_nothing_day" : "pb_nothing_at";
    this.say({ key: nothing, jump: nearest });
  }

  // A minute before the latest footage of the shown day (its span's start if shorter); null: none.
  latest() {
    const spans = this.tracks.flatMap((t) => t.spans);
    if (!spans.length) return null;
    const last = spans.reduce((a, b) => (b.end > a.end ? b : a));
    return Math.max(last.start, last.end - LEAD_IN);
  }

  // The recorded moment nearest `at`: in the day's spans, or the last before / first after the day.
  nearest(at) {
    let best = null;
    const consider = (m) => {
      if (m !== null && (best === null || Math.abs(m - at) < Math.abs(best - at))) best = m;
    };
    for (const track of this.tracks) {
      for (const s of track.spans) consider(Math.max(s.start, Math.min(at, s.end - 1)));
      consider(track.before === null ? null : track.before - 1);
      consider(track.after);
    }
    return best;
  }

  // The status line: a notice (a label key, and the moment to jump to), or nothing.
  say(notice) {
    this.notice = notice;
    const status = $("status");
    if (!notice) { status.replaceChildren(); return; }
    status.replaceChildren(notice.text ?? t(notice.key));
    if (notice.jump === null || notice.jump === undefined) return;
    const button = status.appendChild(document.createElement("button"));
    button.className = "jump";
    button.textContent = t("pb_jump_nearest", { time: new Date(notice.jump * 1000).toLocaleString(locale(), { hour12: false }) });
    button.onclick = () => {
      const at = notice.jump;
      const cameras = this.tracks.map((t) => t.camera);
      (at >= this.base && at < this.base + DAY ? this.goTo(at) : this.start(cameras, at)).catch(failed);
    };
  }

  async seek(at) {
    await Promise.all(this.tracks.map((t) => t.seek(at)));
    for (const t of this.tracks) t.video.playbackRate = this.rate;
    if (!this.paused) await Promise.all(this.tracks.map((t) => t.video.play().catch(() => {})));
  }

  // The recorded moment shown; null before anything has played.
  wallTime() { return this.tracks[0]?.placed ? this.tracks[0].wall() : null; }

  setRate(rate) {
    this.rate = rate;
    for (const t of this.tracks) t.video.playbackRate = rate;
  }

  toggle() {
    this.paused = !this.paused;
    for (const t of this.tracks) this.paused ? t.video.pause() : t.video.play().catch(() => {});
    $("toggle").dataset.i18n = this.paused ? "pb_play" : "pb_pause";
    apply($("controls"));
  }

  async step(seconds) {
    const wall = this.wallTime();
    if (wall !== null) await this.seek(wall + seconds);
  }

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
    const wall = this.wallTime() ?? this.base;
    const found = forward
      ? this.motion.find((p) => p.start > wall + 0.5)
      : this.motion.findLast((p) => p.start < wall - 1.5); // a second in: still "this" one
    if (!found) { this.say({ key: forward ? "no_later_motion" : "no_earlier_motion" }); return; }
    this.say(null);
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
    const wall = this.wallTime();
    if (wall === null) return; // nothing played yet: no clock, no cursor
    const clock = $("clock");
    clock.dataset.wall = wall.toFixed(3);
    clock.textContent = new Date(wall * 1000).toLocaleString(locale(), { hour12: false });
    const cursor = $("timeline").querySelector(".cursor");
    if (cursor) Object.assign(cursor, { hidden: false }).style.left = `${((wall - this.base) / DAY) * 100}%`;
    exportButton();
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
    for (const span of this.tracks.flatMap((t) => t.spans)) {
      add("span", (span.start - this.base) / DAY, (span.end - span.start) / DAY);
    }
    for (const period of this.motion) {
      const end = period.end ?? Date.now() / 1000;
      add("motion", (period.start - this.base) / DAY, (end - period.start) / DAY);
    }
    for (const t of this.tracks) {
      for (const e of t.evidence) if (e.kind === "alarm") add("mark", (e.start - this.base) / DAY, null);
    }
    const { in: from, out: to } = this.marks;
    if (from !== null || to !== null) {
      const [start, end] = this.exportSpan();
      add("chosen", (start - this.base) / DAY, (end - start) / DAY);
    }
    const wall = this.wallTime();
    add("cursor", ((wall ?? this.base) - this.base) / DAY, null);
    line.lastChild.hidden = wall === null; // nothing played yet
  }

  // The span an export takes: the marks set, else the last minute up to the moment shown.
  exportSpan() {
    const wall = this.wallTime() ?? Date.now() / 1000;
    const end = this.marks.out ?? (this.marks.in !== null ? Math.max(wall, this.marks.in + EXPORT_DEFAULT) : wall);
    return [this.marks.in ?? end - EXPORT_DEFAULT, end];
  }

  mark(which) {
    if (this.wallTime() === null) return;
    this.marks[which] = this.wallTime();
    this.drawTimeline();
    showExport();
  }

  // One export per shown camera of the chosen span, each followed to its download link.
  async export() {
    const [start, end] = this.exportSpan();
    if (!(start < end)) { this.exports.set("", { error: t("pb_export_order") }); showExport(); return; }
    const note = $("export-note").value.trim();
    this.exports.clear();
    await Promise.all(this.tracks.map((track) => runExport(
      { camera: track.camera, start, end, note },
      (row) => { this.exports.set(track.camera, row); showExport(); },
    )));
  }
}

// "2026-03-07": the local date of `at`, as a date input takes it.
function localDate(at) {
  const day = new Date(at * 1000);
  const pad = (n) => String(n).padStart(2, "0");
  return `${day.getFullYear()}-${pad(day.getMonth() + 1)}-${pad(day.getDate())}`;
}

function locale() { return lang() === "zh" ? "zh-CN" : "en-GB"; }

function failed(error) { playback.say({ text: error.message }); }

// The export button, saying the span it would take.
function exportButton() {
  const [start, end] = playback.exportSpan();
  $("export-go").textContent = t("pb_export", { from: clockTime(start), to: clockTime(end) });
}

// The export button and the state of each camera's export.
function showExport() {
  exportButton();
  const state = $("export-state");
  state.replaceChildren(...[...playback.exports].map(([camera, row]) => {
    const item = document.createElement("span");
    item.className = "export-item";
    item.dataset.camera = camera;
    if (playback.tracks.length > 1 && camera) item.append(`${camera}: `);
    item.append(exportState(row));
    return item;
  }));
}

const playback = new Playback();
window.playback = playback;

function open() {
  const cameras = $("cameras").value.split(",").map((s) => s.trim()).filter(Boolean).slice(0, 4);
  const day = $("day").valueAsDate; // UTC midnight of the date picked: its local noon is that day
  const at = playback.pendingAt ?? null;
  playback.pendingAt = null;
  if (!cameras.length) { playback.say({ key: "pb_choose_camera" }); return; }
  const query = `?cameras=${cameras.join(",")}${at === null ? "" : `&at=${at.toFixed(3)}`}`;
  history.replaceState(null, "", query);
  const noon = day && at === null ? day.getTime() / 1000 + day.getTimezoneOffset() * 60 + DAY / 2 : null;
  playback.start(cameras, at, noon).catch(failed);
}

apply();
showExport();
$("go").onclick = open;
$("toggle").onclick = () => playback.toggle();
$("back10").onclick = () => playback.step(-10);
$("fwd10").onclick = () => playback.step(10);
$("back60").onclick = () => playback.step(-60);
$("fwd60").onclick = () => playback.step(60);
$("prev-motion").onclick = () => playback.jumpMotion(false);
$("next-motion").onclick = () => playback.jumpMotion(true);
$("speed").onchange = (e) => playback.setRate(Number(e.target.value));
$("mark-in").onclick = () => playback.mark("in");
$("mark-out").onclick = () => playback.mark("out");
$("export-go").onclick = () => playback.export();
$("timeline").onclick = (e) => {
  if (playback.base === undefined) return;
  const box = e.currentTarget.getBoundingClientRect();
  const at = playback.base + ((e.clientX - box.left) / box.width) * DAY;
  const near = playback.nearest(at), slack = (CLICK_SLACK_PX / box.width) * DAY; // a short span is a thin bar
  playback.goTo(near !== null && Math.abs(near - at) <= slack ? near : at).catch(failed);
};
addEventListener("langchange", () => { playback.say(playback.notice); showExport(); });
addEventListener("pagehide", () => { for (const t of playback.tracks) t.close(); });

const params = new URLSearchParams(location.search);
const named = params.get("cameras") || params.get("camera");
if (named) {
  $("cameras").value = named;
  if (params.get("at")) playback.pendingAt = Number(params.get("at"));
  open();
}
