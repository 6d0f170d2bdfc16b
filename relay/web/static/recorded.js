// A recorded-video player: MSE fed with the node's own fMP4 (the recorder's
// segments, by id). Media time is wall time minus `base`, so several players on
// the same base show the same recorded moment when their currentTime agree.
// Used by the playback page and by a wall tile switched to playback.
// A browser without HEVC in MSE says so when it opens a session; the node then
// sends H.265 recordings transcoded to H.264, streamed as they are encoded.
// The audited session is opened at the first moment actually played, so a player
// may be opened on a day (its spans and marks known) before any footage is chosen.

import { reason, t } from "/static/i18n.js";

export const DAY = 86400;
const AHEAD = 20; // seconds of footage kept buffered ahead of the playhead
const PLAYS_H265 = ["hvc1.1.6.L93.B0", "hev1.1.6.L93.B0"]
  .some((c) => MediaSource.isTypeSupported(`video/mp4; codecs="${c}"`));

// The node's JSON; a refusal throws it in the page's language.
export async function json(url, options = {}) {
  let r;
  try {
    r = await fetch(url, { credentials: "same-origin", ...options });
  } catch {
    throw new Error(reason(0, ""));
  }
  if (!r.ok) throw new Error(reason(r.status, await r.text()));
  return r.json();
}

export class Track {
  constructor(camera, base, tile) {
    this.camera = camera;
    this.base = base; // wall time of media time 0
    this.video = tile.querySelector("video");
    this.note = tile.querySelector(".note");
    this.segments = [];
    this.evidence = [];
    this.spans = [];
    this.before = null; // the last recorded moment before the day, the first after it
    this.after = null;
    this.next = 0; // index of the next segment to append
    this.busy = false;
    this.generation = 0;
    this.retryAt = 0; // the node is too busy to transcode until then
    this.placed = false; // whether the video has been put at a recorded moment yet
  }

  async open() {
    this.ms = new MediaSource();
    this.video.src = URL.createObjectURL(this.ms);
    await new Promise((ok) => this.ms.addEventListener("sourceopen", ok, { once: true }));
    await this.refresh();
  }

  // The audited playback session, opened once, at a recorded moment.
  async sessionAt(at) {
    const cam = encodeURIComponent(this.camera);
    this.opening ??= json(`/api/cameras/${cam}/playback`, {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ at, h265: PLAYS_H265 }),
    }).then((body) => body.session);
    try {
      this.session = await this.opening;
    } catch (error) {
      this.opening = null;
      throw error;
    }
  }

  // Whether `at` (wall time) is inside a recorded span of the day.
  recorded(at) { return this.spans.some((s) => s.start <= at && at < s.end); }

  async refresh() {
    const cam = encodeURIComponent(this.camera);
    const body = await json(`/api/cameras/${cam}/recordings?since=${this.base}&until=${this.base + DAY}`);
    this.segments = body.segments;
    this.spans = body.spans;
    this.evidence = body.evidence;
    [this.before, this.after] = [body.before ?? null, body.after ?? null];
  }

  wall() { return this.base + this.video.currentTime; }

  async seek(at) {
    const gen = ++this.generation;
    let i = this.segments.findIndex((s) => s.end > at);
    if (i < 0) { await this.refresh(); i = this.segments.findIndex((s) => s.end > at); }
    if (i < 0) { this.note.textContent = t("pb_nothing_after"); return; }
    await this.sessionAt(Math.max(at, this.segments[i].start));
    if (gen !== this.generation) return;
    if (!this.inBuffer(at)) {
      await this.clear();
      if (gen !== this.generation) return;
      this.next = i;
      const from = Math.max(at, this.segments[i].start);
      // on as soon as the moment is buffered; the rest of the part streams in behind
      await new Promise((ok, fail) => { this.appendNext(from, ok).then(ok, fail); });
    }
    if (gen !== this.generation) return;
    this.video.currentTime = Math.max(at, this.segments[i].start) - this.base;
    this.placed = true;
  }

  inBuffer(at) {
    const t = at - this.base, b = this.sb?.buffered;
    if (!b) return false;
    for (let k = 0; k < b.length; k++) if (b.start(k) <= t && t < b.end(k) - 0.2) return true;
    return false;
  }

  async clear() {
    if (this.reading) { // a part still streaming in (a transcode) is dropped
      this.reading.cancel().catch(() => {});
      await this.appending?.catch(() => {});
    }
    if (!this.sb) return;
    this.sb.abort(); // also forgets a fragment left half appended
    await this.update(() => this.sb.remove(0, Infinity));
  }

  update(action) {
    return new Promise((ok, fail) => {
      const done = (e) => {
        this.sb.removeEventListener("updateend", done);
        this.sb.removeEventListener("error", done);
        if (e.type === "error") fail(new Error("the browser could not take this recording"));
        else ok();
      };
      this.sb.addEventListener("updateend", done);
      this.sb.addEventListener("error", done);
      action();
    });
  }

  appendNext(from, ready = () => {}) {
    if (!this.segments[this.next] || this.busy || Date.now() < this.retryAt) {
      return Promise.resolve(false);
    }
    this.busy = true;
    this.appending = this.append(this.segments[this.next], from, ready)
      .finally(() => { this.busy = false; this.reading = null; });
    return this.appending;
  }

  // One part (a segment's init and its fragments from `from`), appended as it
  // arrives; `ready` once the moment `from` is in the buffer.
  async append(seg, from, ready) {
    const cam = encodeURIComponent(this.camera);
    const r = await fetch(`/api/cameras/${cam}/segments/${seg.id}?from=${from ?? seg.start}&session=${this.session}`);
    if (!r.ok) {
      this.note.textContent = reason(r.status, await r.text());
      if (r.status === 503) this.retryAt = Date.now() + 1000 * Number(r.headers.get("Retry-After") || 5);
      else this.next++;
      return false;
    }
    const type = `video/mp4; codecs="${r.headers.get("X-Codec")}"`;
    if (!this.sb) {
      if (!MediaSource.isTypeSupported(type)) {
        this.note.textContent = t("pb_cannot_decode", { type });
        return false;
      }
      this.sb = this.ms.addSourceBuffer(type);
      this.sb.mode = "segments";
    } else if (this.sb.changeType) {
      this.sb.changeType(type);
    }
    this.note.textContent = "";
    this.sb.timestampOffset = seg.start - this.base;
    this.reading = r.body.getReader();
    for (;;) {
      const { done, value } = await this.reading.read();
      if (done) break;
      await this.update(() => this.sb.appendBuffer(value));
      if (this.covers(from ?? seg.start)) ready();
    }
    this.next++;
    return true;
  }

  covers(at) {
    const t = at - this.base, b = this.sb.buffered;
    for (let k = 0; k < b.length; k++) if (b.start(k) <= t + 0.1 && t < b.end(k)) return true;
    return false;
  }

  async pump() {
    if (!this.sb || this.busy) return;
    const b = this.sb.buffered, t = this.video.currentTime;
    const end = b.length ? b.end(b.length - 1) : 0;
    if (end - t < AHEAD) {
      if (this.next >= this.segments.length) await this.refresh();
      await this.appendNext();
    }
    for (let k = 0; k + 1 < b.length; k++) { // skip a gap: jump to the next span
      if (t >= b.end(k) - 0.15 && t < b.start(k + 1)) this.video.currentTime = b.start(k + 1);
    }
    if (t > 90 && !this.sb.updating && b.length && b.start(0) < t - 60) {
      await this.update(() => this.sb.remove(0, t - 60));
    }
  }

  frames() { return this.video.getVideoPlaybackQuality().totalVideoFrames; }

  close() {
    if (this.session) fetch(`/api/playback/${this.session}`, { method: "DELETE", keepalive: true });
  }
}

/** Local midnight before `at` (Unix seconds): the base of a day's timeline. */
export function dayStart(at) {
  const day = new Date(at * 1000);
  return new Date(day.getFullYear(), day.getMonth(), day.getDate()).getTime() / 1000;
}
