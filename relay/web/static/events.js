// The alert bus in the browser: a WebSocket feed of events that resumes from the
// last event it saw after any disconnect, so a wall misses nothing.
//
//   const feed = new EventFeed();
//   feed.addEventListener("event", (e) => show(e.detail));
//   await feed.start();   // fetches what is open now, then follows live events

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 10000;

export class EventFeed extends EventTarget {
  constructor() {
    super();
    this.last = 0;
    this.socket = null;
    this.connected = false;
    this._running = false;
    this._failures = 0;
    this._timer = null;
  }

  // Starts after the newest event stored now; returns the recent events (newest first).
  async start() {
    this._running = true;
    if (!this._woken) {
      this._woken = true;
      addEventListener("online", () => this.reconnectNow());
      document.addEventListener("visibilitychange", () => {
        if (document.visibilityState === "visible") this.reconnectNow();
      });
    }
    const recent = await this.recent();
    this.last = recent.reduce((max, e) => Math.max(max, e.seq), this.last);
    this._connect();
    return recent;
  }

  // A phone that was asleep or between cells: try again now, not after the backoff.
  reconnectNow() {
    if (!this._running || (this.socket && this.socket.readyState <= WebSocket.OPEN)) return;
    clearTimeout(this._timer);
    this._failures = 0;
    this._connect();
  }

  stop() {
    this._running = false;
    clearTimeout(this._timer);
    if (this.socket) this.socket.close();
  }

  async recent(query = "") {
    const response = await fetch(`/api/events${query}`);
    if (response.status === 401) {
      location.href = `/login?next=${encodeURIComponent(location.pathname + location.search)}`;
      return [];
    }
    return response.ok ? response.json() : [];
  }

  async publish(body) {
    const response = await fetch("/api/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = await response.text();
    if (!response.ok) {
      const error = new Error(text.trim() || `${response.status}`);
      error.status = response.status;
      throw error;
    }
    return JSON.parse(text);
  }

  _connect() {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const socket = new WebSocket(`${scheme}//${location.host}/api/events?after=${this.last}`);
    this.socket = socket;
    socket.onopen = () => {
      this._failures = 0;
      this.connected = true;
      this.dispatchEvent(new CustomEvent("connected"));
    };
    socket.onmessage = (message) => {
      for (const event of JSON.parse(message.data)) {
        if (event.seq <= this.last) continue;
        this.last = event.seq;
        this.dispatchEvent(new CustomEvent("event", { detail: event }));
      }
    };
    socket.onclose = (closing) => {
      this.connected = false;
      this.dispatchEvent(new CustomEvent("disconnected"));
      if (!this._running || socket !== this.socket) return;
      if (closing.code === 1008) {
        // Access ended (to the login page) or changed (on, with the new scope).
        this.recent("?limit=1").then(() => this._running && this._connect());
        return;
      }
      const delay = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this._failures++);
      this._timer = setTimeout(() => this._connect(), delay * (0.5 + Math.random() / 2));
    };
  }
}

// A short two-tone alert, made here: no sound file, nothing fetched.
export function chime() {
  try {
    const audio = new AudioContext();
    for (const [i, freq] of [880, 660, 880].entries()) {
      const tone = audio.createOscillator();
      const gain = audio.createGain();
      tone.frequency.value = freq;
      gain.gain.value = 0.15;
      tone.connect(gain).connect(audio.destination);
      tone.start(audio.currentTime + i * 0.18);
      tone.stop(audio.currentTime + i * 0.18 + 0.15);
    }
    setTimeout(() => audio.close(), 1000);
  } catch {
    // No audio device: the highlight alone has to do.
  }
}
