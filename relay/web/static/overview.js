// The home page: at a glance, cameras per village (total, online, offline, idle), the open alarms
// and the active lookouts; then every camera. Refreshed every few seconds.

import { element, kindText, stateText } from "/static/alarms.js";
import { me } from "/static/header.js";
import { apply, cameraError, clockTime, t } from "/static/i18n.js";

const $ = (id) => document.getElementById(id);
const REFRESH_MS = 4000;

async function json(url) {
  const response = await fetch(url, { cache: "no-store" });
  if (response.status === 401) location.href = `/login?next=${encodeURIComponent(location.pathname)}`;
  return response.ok ? response.json() : [];
}

// Every site that has cameras of its own or below it, as a card with its counts.
function villages(sites) {
  const cards = [];
  const walk = (site, depth) => {
    if (site.cameras) {
      const card = element("a", `card${site.offline ? " has-offline" : ""}`);
      card.href = `/station#site=${encodeURIComponent(site.id)}`;
      card.dataset.site = site.id;
      const { cameras, online, offline, idle } = site;
      Object.assign(card.dataset, { cameras, online, offline, idle });
      card.append(element("strong", "", site.name));
      card.append(element("span", "total", t("n_cameras", { n: cameras })));
      card.append(element("span", "online", t("n_online", { n: online })));
      card.append(element("span", "offline", t("n_offline", { n: offline })));
      // On-demand cameras nobody watches are neither up nor down: counted apart.
      if (idle) card.append(element("span", "idle", t("n_idle", { n: idle })));
      cards.push(card);
    }
    site.children.forEach((kid) => walk(kid, depth + 1));
  };
  sites.forEach((site) => walk(site, 0));
  $("villages").replaceChildren(...cards);
}

function alarms(list, names) {
  $("alarm-count").textContent = list.length;
  const rows = list.map((alarm) => {
    const li = element("li", `alarm ${alarm.state}`);
    li.dataset.id = alarm.id;
    li.append(
      element("strong", "", names.get(alarm.camera) || alarm.camera),
      ` ${clockTime(alarm.time)} · ${kindText(alarm) || "—"} · `,
      element("span", "state", stateText(alarm)),
    );
    return li;
  });
  if (!rows.length) rows.push(element("li", "none", t("no_alarms")));
  $("open-alarms").replaceChildren(...rows);
}

function lookouts(list) {
  $("lookout-count").textContent = list.length;
  const rows = list.map((lookout) => {
    const li = element("li", "lookout-row");
    li.dataset.id = lookout.id;
    li.append(element("strong", "", lookout.data.text), ` · ${lookout.by} · ${clockTime(lookout.time)}`);
    li.append(element("span", "meta", ` · ${t("n_sightings", { n: lookout.sightings.length })}`));
    return li;
  });
  if (!rows.length) rows.push(element("li", "none", t("no_lookouts")));
  $("active-lookouts").replaceChildren(...rows);
}

function cameras(list, siteNames, admin) {
  $("cameras").replaceChildren(
    ...list.map((c) => {
      const row = element("tr", "");
      const link = element("a", "", c.name);
      link.href = `/view/${encodeURIComponent(c.id)}`;
      const info = c.info ? `${c.info.codec} ${c.info.width}×${c.info.height}` : "";
      const why = c.last_error && c.state !== "online" ? ` (${cameraError(c.last_error)})` : "";
      for (const value of [link, siteNames.get(c.site) || c.site, t(c.state) + why, info]) {
        row.appendChild(element("td", "")).append(value);
      }
      if (admin) { // where an admin draws the camera's motion zones and masks
        const zones = element("a", "regions", t("regions_title"));
        zones.href = `/cameras/${encodeURIComponent(c.id)}/motion`;
        row.children[0].append(" · ", zones);
      }
      row.children[2].className = c.state;
      return row;
    }),
  );
}

async function refresh() {
  const [sites, cams, open, active] = await Promise.all([
    json("/api/sites"),
    json("/api/cameras"),
    json("/api/alarms?state=unresolved"),
    json("/api/lookouts"),
  ]);
  const siteNames = new Map();
  const walk = (s) => (siteNames.set(s.id, s.name), s.children.forEach(walk));
  sites.forEach(walk);
  villages(sites);
  alarms(open, new Map(cams.map((c) => [c.id, c.name])));
  lookouts(active);
  cameras(cams, siteNames, (await me())?.role === "admin");
}

async function loop() {
  try {
    await refresh();
  } finally {
    setTimeout(loop, REFRESH_MS);
  }
}

apply();
addEventListener("langchange", refresh);
window.overview = { ready: refresh().then(() => setTimeout(loop, REFRESH_MS)) };
