// An alarm's clip on the station's alarm card: play it (the playback page from 10 s
// before the alarm) and export it as evidence, the export's state shown on the card
// until its file can be downloaded. The camera may be this node's or a village's
// (PEER.CAMERA): the node serves both the same way. The playback page exports
// what it shows with the same flow (runExport, exportState).

import { element } from "/static/alarms.js";
import { reason, t } from "/static/i18n.js";

const PRE = 10; // seconds before and after the alarm, when its clip is not found
const POST = 20;

export class AlarmClips {
  constructor({ onChange }) {
    this.onChange = onChange;
    this.exports = new Map(); // alarm id -> the export's row, or {state: "asking"} / {error}
  }

  // The card's clip controls for an alarm on a recorded camera `cameraId`.
  controls(alarm, cameraId) {
    const box = element("div", "clip-actions");
    const play = box.appendChild(element("a", "clip", t("clip")));
    play.href = `/playback?camera=${encodeURIComponent(cameraId)}&at=${(alarm.time - PRE).toFixed(3)}`;
    play.target = "_blank";
    const exported = this.exports.get(alarm.id);
    if (!exported || exported.error) {
      const button = box.appendChild(element("button", "export", t("export_clip")));
      button.addEventListener("click", () => this.export(alarm, cameraId));
    }
    if (exported) box.append(exportState(exported));
    return box;
  }

  async export(alarm, cameraId) {
    const set = (row) => this._set(alarm.id, row);
    set({ state: "asking" });
    let span;
    try {
      span = await clipSpan(alarm, cameraId);
    } catch (error) {
      set({ error: error.message });
      return;
    }
    const [start, end] = span;
    await runExport({ camera: cameraId, start, end, note: t("alarm_clip_note", { id: alarm.id }) }, set);
  }

  _set(alarmId, value) {
    this.exports.set(alarmId, value);
    this.onChange();
  }
}

// The span the node keeps for the alarm (its evidence lock), else PRE/POST around it;
// never past what is recorded by now.
async function clipSpan(alarm, cameraId) {
  const around = `since=${alarm.time - 120}&until=${alarm.time + 120}`;
  const found = await json(`/api/cameras/${encodeURIComponent(cameraId)}/recordings?${around}`);
  const lock = (found.evidence || []).find((e) => e.kind === "alarm" && e.ref === alarm.id);
  const [start, end] = lock ? [lock.start, lock.end] : [alarm.time - PRE, alarm.time + POST];
  return [start, Math.min(end, Date.now() / 1000)];
}

// One export ({camera, start, end, note}): asked for, then followed until its file
// is ready or it failed; `onRow` hears each state (the export's row, {state:
// "asking"} or {error}: a refusal in the page's language).
export async function runExport(body, onRow) {
  onRow({ state: "asking" });
  try {
    let row = await json("/api/exports", { method: "POST", body: JSON.stringify(body) });
    onRow(row);
    while (row.state === "building") {
      await new Promise((resolve) => setTimeout(resolve, 1000));
      row = await json(`/api/exports/${encodeURIComponent(row.id)}`);
      onRow(row);
    }
    if (row.state !== "ready") onRow({ error: row.error || row.state });
  } catch (error) {
    onRow({ error: error.message });
  }
}

// An export's state as shown: its progress, the refusal, or the download link.
export function exportState(exported) {
  if (exported.error) return element("span", "export-state failed", exported.error);
  if (exported.state === "ready") {
    const link = element("a", "export-file", t("download_export"));
    link.href = exported.file;
    link.download = "";
    return link;
  }
  const done = Math.round((exported.progress || 0) * 100);
  return element("span", `export-state ${exported.state}`, t("export_building", { done }));
}

async function json(url, options = {}) {
  let response;
  try {
    response = await fetch(url, {
      credentials: "same-origin",
      headers: { "Content-Type": "application/json" },
      ...options,
    });
  } catch {
    throw new Error(reason(0, ""));
  }
  if (!response.ok) throw new Error(reason(response.status, await response.text()));
  return response.json();
}
