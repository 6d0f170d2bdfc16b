// A WHEP player (draft-ietf-wish-whep) for a <video> element. Plain ES module,
// no build step. It reconnects by itself, with backoff, whenever the session fails.
//
//   import { WhepPlayer } from "/static/whep-player.js";
//   const player = new WhepPlayer(videoElement, "/whep/east-gate?stream=sub");
//   player.start();            // player.stop() ends the session (DELETE)
//
// "state" events carry { state, detail, status }: status is the HTTP status of a
// refused offer (409 camera offline, 401 logged out, ...), 0 otherwise.

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;
const DISCONNECTED_GRACE_MS = 4000;

export class WhepPlayer extends EventTarget {
  constructor(video, url, { token = null } = {}) {
    super();
    this.video = video;
    this.url = url;
    this.token = token;
    this.pc = null;
    this.sessionUrl = null;
    this.state = "idle";
    this.offerSentAt = null;
    this._running = false;
    this._failures = 0;
    this._timer = null;
    this._generation = 0; // bumped by start() and stop(): late async work of an old run quits
  }

  start() {
    if (this._running) return;
    this._running = true;
    this._generation++;
    this._connect();
  }

  async stop() {
    this._running = false;
    this._generation++;
    clearTimeout(this._timer);
    await this._teardown();
    this._setState("idle");
  }

  async stats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") return s;
    }
    return null;
  }

  _setState(state, detail = "", status = 0) {
    if (state === this.state && !detail) return;
    this.state = state;
    this.dispatchEvent(new CustomEvent("state", { detail: { state, detail, status } }));
  }

  _headers(extra = {}) {
    return this.token ? { ...extra, Authorization: `Bearer ${this.token}` } : extra;
  }

  async _connect() {
    const generation = this._generation;
    this._setState("connecting");
    const iceServers = await this._iceServers();
    if (generation !== this._generation || this.pc) return; // stopped meanwhile
    const pc = new RTCPeerConnection({ iceServers });
    this.pc = pc;
    const video = pc.addTransceiver("video", { direction: "recvonly" });
    preferH264(video);
    pc.addTransceiver("audio", { direction: "recvonly" });
    pc.ontrack = (event) => {
      if (event.track.kind !== "video" && this.video.srcObject) {
        this.video.srcObject.addTrack(event.track);
        return;
      }
      const stream = this.video.srcObject || new MediaStream();
      stream.addTrack(event.track);
      this.video.srcObject = stream;
    };
    pc.onconnectionstatechange = () => this._onConnectionState(pc);
    try {
      await pc.setLocalDescription(await pc.createOffer());
      this.offerSentAt = performance.now();
      const response = await fetch(this.url, {
        method: "POST",
        headers: this._headers({ "Content-Type": "application/sdp" }),
        body: pc.localDescription.sdp,
      });
      const body = await response.text();
      if (response.status !== 201) {
        const retry = Number(response.headers.get("Retry-After")) * 1000 || 0;
        throw new WhepError(response.status, body.trim(), retry);
      }
      const sessionUrl = new URL(response.headers.get("Location"), location.href).href;
      if (this.pc !== pc) {
        this._delete(sessionUrl); // stopped meanwhile: end the session it just made
        return;
      }
      this.sessionUrl = sessionUrl;
      await pc.setRemoteDescription({ type: "answer", sdp: body });
    } catch (error) {
      this._fail(pc, error);
    }
  }

  async _iceServers() {
    try {
      const response = await fetch(this.url, { method: "OPTIONS", headers: this._headers() });
      return parseIceLinks(response.headers.get("Link"));
    } catch {
      return [];
    }
  }

  _onConnectionState(pc) {
    if (pc !== this.pc) return;
    const state = pc.connectionState;
    if (state === "connected") {
      this._failures = 0;
      this._setState("playing");
    } else if (state === "failed" || state === "closed") {
      this._fail(pc, new Error(`connection ${state}`));
    } else if (state === "disconnected") {
      clearTimeout(this._timer);
      this._timer = setTimeout(() => {
        if (pc === this.pc && pc.connectionState === "disconnected") {
          this._fail(pc, new Error("connection lost"));
        }
      }, DISCONNECTED_GRACE_MS);
    }
  }

  async _fail(pc, error) {
    if (pc !== this.pc || !this._running) return;
    const generation = this._generation;
    await this._teardown();
    if (generation !== this._generation) return; // stopped (or restarted) meanwhile
    const backoff = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this._failures++);
    const delay = Math.max(error.retryAfter || 0, backoff * (0.5 + Math.random() / 2));
    const state = error.status === 409 ? "offline" : "retrying";
    this._setState(state, error.message, error.status || 0);
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._running && this._connect(), delay);
  }

  async _teardown() {
    const pc = this.pc;
    const sessionUrl = this.sessionUrl;
    this.pc = null;
    this.sessionUrl = null;
    if (pc) pc.close();
    if (this.video.srcObject) {
      this.video.srcObject.getTracks().forEach((t) => t.stop());
      this.video.srcObject = null;
    }
    if (sessionUrl) await this._delete(sessionUrl);
  }

  async _delete(sessionUrl) {
    try {
      await fetch(sessionUrl, { method: "DELETE", headers: this._headers(), keepalive: true });
    } catch {
      // The node frees a vanished session by itself.
    }
  }
}

class WhepError extends Error {
  constructor(status, reason, retryAfter) {
    super(`${status} ${reason}`);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

function preferH264(transceiver) {
  if (!RTCRtpReceiver.getCapabilities || !transceiver.setCodecPreferences) return;
  const codecs = RTCRtpReceiver.getCapabilities("video").codecs;
  const h264 = codecs.filter((c) => c.mimeType === "video/H264");
  const rest = codecs.filter((c) => c.mimeType !== "video/H264");
  transceiver.setCodecPreferences([...h264, ...rest]);
}

export function parseIceLinks(header) {
  if (!header) return [];
  const servers = [];
  for (const part of header.split(/,(?=\s*<)/)) {
    const match = part.match(/<([^>]+)>(.*)/);
    if (!match || !/rel="ice-server"/.test(match[2])) continue;
    const server = { urls: match[1] };
    const user = match[2].match(/username="([^"]*)"/);
    const cred = match[2].match(/credential="([^"]*)"/);
    if (user) server.username = user[1];
    if (cred) server.credential = cred[1];
    servers.push(server);
  }
  return servers;
}
