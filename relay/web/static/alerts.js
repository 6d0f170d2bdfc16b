// Lookouts (布控) on every screen: banners with their photo (a click enlarges it),
// "report a sighting" with a camera's snapshot, hiding one asks first; the
// station's list of active lookouts with their sightings, where one is cancelled.
// Small dialogs shared by the pages: ask(), form dialogs, the photo viewer.

import { chime } from "/static/events.js";
import { element } from "/static/alarms.js";
import { clockTime, reason, t } from "/static/i18n.js";
import { toast } from "/static/toast.js";

// A modal dialog built from `fields` ({name, label, type, options, required, value});
// resolves with the values, or null when cancelled.
export function formDialog(title, fields, { send = "send" } = {}) {
  const dialog = element("dialog", "alarm-dialog");
  const form = dialog.appendChild(element("form", ""));
  form.method = "dialog";
  form.append(element("h3", "", title));
  for (const field of fields) {
    const label = form.appendChild(element("label", "field"));
    label.append(element("span", "", field.label));
    let input;
    if (field.options) {
      input = element("select", "");
      for (const [value, text] of field.options) input.append(new Option(text, value));
    } else if (field.type === "textarea") {
      input = element("textarea", "");
      input.rows = 3;
    } else {
      input = element("input", "");
      input.type = field.type || "text";
      if (field.accept) input.accept = field.accept;
    }
    input.name = field.name;
    if (field.required) input.required = true;
    if (field.maxLength) input.maxLength = field.maxLength;
    if (field.value !== undefined) input.value = field.value;
    label.append(input);
  }
  const buttons = form.appendChild(element("div", "buttons"));
  const cancel = buttons.appendChild(element("button", "cancel", t("cancel")));
  Object.assign(cancel, { type: "button" });
  const ok = buttons.appendChild(element("button", "send", t(send)));
  ok.value = "send";
  cancel.addEventListener("click", () => dialog.close("cancel"));
  document.body.append(dialog);
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const values = {};
      for (const field of fields) {
        const input = form.elements[field.name];
        values[field.name] = field.type === "file" ? input.files[0] || null : input.value;
      }
      dialog.remove();
      resolve(dialog.returnValue === "send" ? values : null);
    });
  });
}

// Yes or no, asked in the page (a native confirm() would stop the wall's video).
export async function ask(question) {
  const answer = await formDialog(question, [], { send: "yes" });
  return answer !== null;
}

export function showPhoto(src, caption = "") {
  const dialog = element("dialog", "photo-dialog");
  const img = dialog.appendChild(element("img", "big"));
  img.src = src;
  img.alt = caption;
  if (caption) dialog.append(element("div", "caption", caption));
  const close = dialog.appendChild(element("button", "close", t("close")));
  close.addEventListener("click", () => dialog.close());
  dialog.addEventListener("click", (event) => event.target === dialog && dialog.close());
  dialog.addEventListener("close", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
  return dialog;
}

// Publish `body`; say so in words either way. True when it was taken.
export async function send(feed, body, done = "sent_ok") {
  try {
    await feed.publish(body);
    toast(t(done));
    return true;
  } catch (error) {
    toast(t("not_sent", { error: reason(error.status, error.message) }), "error");
    return false;
  }
}

// "上报线索": a sighting of one of `lookouts` on a camera, with its snapshot (the node
// takes it from the camera as the sighting arrives).
export async function reportSighting(feed, lookouts, cameras, { camera = null } = {}) {
  if (!lookouts.length) return false;
  const fields = [];
  fields.push({
    name: "ref",
    label: t("lookout"),
    options: lookouts.map((l) => [l.id, l.data.text.slice(0, 40)]),
  });
  const choices = camera ? cameras.filter((c) => c.id === camera) : cameras;
  fields.push({ name: "camera", label: t("camera"), options: choices.map((c) => [c.id, c.name]) });
  fields.push({ name: "note", label: t("sighting_note"), type: "textarea", maxLength: 2000 });
  const values = await formDialog(t("report_sighting"), fields);
  if (!values) return false;
  return send(feed, { type: "sighting", ...values }, "sighting_sent");
}

// Active lookouts, newest first; each leaves when it expires, is cancelled, or is
// hidden on this screen (after asking).
export class LookoutBoard {
  constructor(container, { onSighting = null, canReport = () => true, onChange = () => {} } = {}) {
    this.container = container;
    this.canReport = canReport;
    this.onSighting = onSighting;
    this.onChange = onChange;
    this.lookouts = new Map();
    this.dismissed = new Set(JSON.parse(sessionStorage.getItem("vw-dismissed") || "[]"));
    setInterval(() => this.render(), 30000); // expiry
  }

  async load() {
    const response = await fetch("/api/lookouts", { cache: "no-store" });
    if (!response.ok) return;
    for (const lookout of await response.json()) this.lookouts.set(lookout.id, lookout);
    this.render();
  }

  onEvent(event, { sound = false } = {}) {
    if (event.type === "lookout") this.add(event, { sound });
    else if (event.type === "cancel" && this.lookouts.delete(event.ref)) this.render();
  }

  add(event, { sound = false } = {}) {
    if (event.type !== "lookout" || event.state === "cancelled") return;
    this.lookouts.set(event.id, event);
    if (sound && !this.dismissed.has(event.id)) chime();
    this.render();
  }

  async dismiss(id) {
    if (!(await ask(t("dismiss_ask")))) return;
    this.dismissed.add(id);
    sessionStorage.setItem("vw-dismissed", JSON.stringify([...this.dismissed].slice(-200)));
    this.render();
  }

  active() {
    const now = Date.now() / 1000;
    return [...this.lookouts.values()]
      .filter((e) => !(e.data.expires < now) && !this.dismissed.has(e.id))
      .sort((a, b) => b.time - a.time);
  }

  render() {
    const active = this.active();
    this.container.replaceChildren(...active.map((e) => this._banner(e)));
    this.container.hidden = active.length === 0;
    this.onChange();
  }

  _banner(event) {
    const banner = element("div", "lookout");
    banner.dataset.id = event.id;
    if (event.image) {
      const photo = banner.appendChild(element("img", "photo"));
      photo.src = event.image;
      photo.alt = t("lookout_photo_alt");
      photo.tabIndex = 0;
      photo.title = t("enlarge");
      const open = () => showPhoto(event.image, event.data.text);
      photo.addEventListener("click", open);
      photo.addEventListener("keydown", (e) => e.key === "Enter" && open());
    }
    const body = banner.appendChild(element("div", "body"));
    body.append(element("strong", "", t("lookout")), " ", element("span", "text", event.data.text));
    const expires = event.data.expires ? t("until", { time: clockTime(event.data.expires) }) : "";
    body.append(element("div", "meta", `${event.by} · ${clockTime(event.time)} ${expires}`));
    if (this.onSighting && this.canReport()) {
      const report = banner.appendChild(element("button", "sighting", t("report_sighting")));
      report.addEventListener("click", () => this.onSighting(event));
    }
    const close = banner.appendChild(element("button", "dismiss", "×"));
    close.title = t("dismiss");
    close.setAttribute("aria-label", t("dismiss"));
    close.addEventListener("click", () => this.dismiss(event.id));
    return banner;
  }
}

// The station's list of active lookouts, each with its sightings, and 撤销布控.
export class LookoutList {
  constructor(list, feed, { canCancel, cameraName }) {
    Object.assign(this, { list, feed, canCancel, cameraName });
    this.lookouts = [];
  }

  async reload() {
    const response = await fetch("/api/lookouts", { cache: "no-store" });
    if (response.ok) this.lookouts = await response.json();
    this.render();
  }

  onEvent(event) {
    if (["lookout", "sighting", "cancel"].includes(event.type)) this.reload();
  }

  render() {
    const items = this.lookouts.map((lookout) => {
      const li = element("li", "lookout-item");
      li.dataset.id = lookout.id;
      li.append(element("div", "text", lookout.data.text));
      li.append(element("div", "meta", `${lookout.by} · ${clockTime(lookout.time)}`));
      const sightings = li.appendChild(element("ul", "sightings"));
      for (const s of lookout.sightings) {
        const row = sightings.appendChild(element("li", "sighting"));
        row.dataset.id = s.id;
        row.append(`${this.cameraName(s.camera)} · ${clockTime(s.time)} · ${s.by}`);
        if (s.data.note) row.append(element("div", "note", s.data.note));
        if (s.image) {
          const img = row.appendChild(element("img", "thumb"));
          Object.assign(img, { src: s.image, alt: t("snapshot"), tabIndex: 0 });
          img.addEventListener("click", () => showPhoto(s.image, s.data.note));
        }
      }
      if (this.canCancel) {
        const cancel = li.appendChild(element("button", "cancel-lookout", t("cancel_lookout")));
        cancel.addEventListener("click", async () => {
          if (await ask(t("cancel_lookout_ask"))) await send(this.feed, { type: "cancel", ref: lookout.id }, "cancelled_ok");
        });
      }
      return li;
    });
    if (!items.length) items.push(element("li", "none", t("no_lookouts")));
    this.list.replaceChildren(...items);
  }
}

// A phone photo (several MB) made small enough to send: at most `side` pixels on its
// long side, JPEG, stepping the quality down until it fits `bytes`. Base64 out.
export async function shrinkPhoto(file, { side = 1280, bytes = 480 * 1024 } = {}) {
  const bitmap = await createImageBitmap(file);
  const scale = Math.min(1, side / Math.max(bitmap.width, bitmap.height));
  const canvas = document.createElement("canvas");
  canvas.width = Math.round(bitmap.width * scale);
  canvas.height = Math.round(bitmap.height * scale);
  canvas.getContext("2d").drawImage(bitmap, 0, 0, canvas.width, canvas.height);
  bitmap.close();
  for (const quality of [0.85, 0.7, 0.55, 0.4, 0.3]) {
    const blob = await new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", quality));
    if (blob.size <= bytes || quality === 0.3) {
      const data = new Uint8Array(await blob.arrayBuffer());
      let text = "";
      for (let i = 0; i < data.length; i += 0x8000) text += String.fromCharCode(...data.subarray(i, i + 0x8000));
      return btoa(text);
    }
  }
  return null;
}
