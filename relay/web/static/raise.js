// The operator's alarm: the 报警 dialog (type and reason), the POST, the answer
// in words; and whether this user may raise alarms, report sightings, look back.

import { reason as refusal, t } from "/static/i18n.js";
import { toast } from "/static/toast.js";

const KINDS = ["theft", "fire", "fight", "missing", "traffic", "other"];
const RAISERS = new Set(["admin", "officer", "operator"]);
let canRaise = false; // until the node says who is logged in: a viewer sees no alarm button
let canPlayBack = false;
// Settled once the node has said who is logged in and the tiles have heard it.
export const rolesKnown = fetch("/api/me")
  .then((r) => (r.ok ? r.json() : null))
  .then((who) => {
    canRaise = Boolean(who && RAISERS.has(who.role));
    canPlayBack = Boolean(who && who.playback); // the node's rule: roles, and a viewer's grant
    dispatchEvent(new Event("vw-roles")); // the tiles show or hide their buttons
  })
  .catch(() => {});

// Whether this user may raise alarms and report sightings (admin, officer, operator).
export function mayRaise() {
  return canRaise;
}

// Whether this user may look back at recordings (the tiles' look-back button).
export function mayPlayBack() {
  return canPlayBack;
}

let dialog = null;

function alarmDialog() {
  if (dialog) return dialog;
  dialog = element("dialog", "alarm-dialog");
  const form = dialog.appendChild(element("form", ""));
  form.method = "dialog";
  const title = form.appendChild(element("h3", ""));
  const kind = form.appendChild(element("select", "kind"));
  kind.name = "kind";
  const reason = form.appendChild(element("input", ""));
  Object.assign(reason, { name: "reason", maxLength: 200, autocomplete: "off" });
  const buttons = form.appendChild(element("div", "buttons"));
  const send = buttons.appendChild(element("button", "send"));
  send.value = "send";
  const cancel = buttons.appendChild(element("button", "cancel"));
  Object.assign(cancel, { value: "cancel", type: "button", formNoValidate: true });
  cancel.addEventListener("click", () => dialog.close("cancel"));
  Object.assign(dialog, { titleEl: title, kind, reason, send, cancel });
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "send" && dialog.camera) {
      raiseAlarm(dialog.camera, reason.value.trim(), kind.value);
    }
  });
  return dialog;
}

// `kept`: what was typed before the node refused it, shown again.
export function openAlarm(camera, kept = { reason: "", kind: "other" }) {
  const d = alarmDialog();
  d.camera = camera;
  d.titleEl.textContent = t("alarm_title", { camera: camera.name });
  d.reason.placeholder = t("alarm_reason");
  d.reason.value = kept.reason;
  d.kind.replaceChildren(...KINDS.map((k) => new Option(t(`kind_${k}`), k)));
  d.kind.value = kept.kind;
  d.send.textContent = t("send");
  d.cancel.textContent = t("cancel");
  d.returnValue = "";
  d.showModal();
}

// POST the alarm; the operator is told in words what became of it. Its state as
// the station works it then shows in the wall's alarm strip.
export async function raiseAlarm(camera, reason, kind = "other") {
  const body = { type: "alarm", camera: camera.id, kind, reason };
  try {
    const response = await fetch("/api/events", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    const text = (await response.text()).trim().slice(0, 300);
    if (response.ok) toast(t("alarm_sent", { camera: camera.name }), "ok");
    else {
      toast(t("not_sent", { error: refusal(response.status, text) }), "error");
      if (response.status !== 401) openAlarm(camera, { reason, kind }); // nothing typed is lost
    }
    return response.status;
  } catch {
    toast(t("not_sent", { error: refusal(0, "") }), "error"); // the network, not the node
    openAlarm(camera, { reason, kind });
    return 0;
  }
}


function element(tag, className) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  return el;
}
