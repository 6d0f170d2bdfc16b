// The header every page carries: the node's name, the pages this user may open,
// who is logged in, the language and log out (monitoring-room PCs are shared
// between shifts). A page includes it with one line,
//   <script type="module" src="/static/header.js"></script>
// and is listed in PAGES below with one line: where it is, its name, who may open it.

import { apply, lang, t, toggleLang } from "/static/i18n.js";

const PEOPLE = ["admin", "officer", "operator", "viewer"];
export const PAGES = [
  { href: "/", zh: "总览", en: "Overview", roles: [...PEOPLE] },
  { walls: true, roles: ["admin", "officer", "operator", "viewer"] }, // one link per wall
  { href: "/station", zh: "派出所查看", en: "Station", roles: [...PEOPLE] },
  { href: "/alarms", zh: "报警记录", en: "Alarm history", roles: ["admin", "officer", "operator"] },
  { href: "/playback", zh: "录像回放", en: "Playback", roles: ["admin", "officer", "operator"] },
  { href: "/inspection", zh: "巡检", en: "Inspection", roles: [...PEOPLE] },
  { href: "/patrol", zh: "巡逻队", en: "Patrol", roles: ["admin", "officer", "patrol"] },
];

const ROLE_LABELS = {
  zh: { admin: "管理员", officer: "民警", operator: "值班员", viewer: "查看", patrol: "巡逻队" },
  en: { admin: "admin", officer: "officer", operator: "operator", viewer: "viewer", patrol: "patrol" },
};

let meAnswer = null;

// Who is logged in (GET /api/me), fetched once per page; null when logged out.
export function me() {
  meAnswer ??= fetch("/api/me", { cache: "no-store" }).then((r) => (r.ok ? r.json() : null));
  return meAnswer;
}

function link(href, text, current) {
  const a = document.createElement("a");
  a.href = href;
  a.textContent = text;
  if (current) a.setAttribute("aria-current", "page");
  return a;
}

async function pageLinks(user) {
  const here = location.pathname;
  const links = [];
  for (const page of PAGES.filter((p) => p.roles.includes(user.role))) {
    if (!page.walls) {
      links.push(link(page.href, page[lang()] || page.zh, here === page.href));
      continue;
    }
    const walls = await fetch("/api/walls").then((r) => (r.ok ? r.json() : []));
    for (const wall of walls) {
      const href = `/wall/${encodeURIComponent(wall.id)}`;
      links.push(link(href, `${t("wall")}：${wall.name}`, here === href));
    }
  }
  return links;
}

async function logOut() {
  await fetch("/api/logout", { method: "POST" }).catch(() => {});
  location.href = "/login";
}

async function render(nav) {
  const user = await me();
  if (!user) return;
  const node = Object.assign(document.createElement("strong"), { textContent: user.node.name });
  node.className = "node";
  const pages = document.createElement("span");
  pages.className = "pages";
  pages.append(...(await pageLinks(user)));
  const who = document.createElement("span");
  who.className = "who";
  const team = user.team ? ` · ${user.team.name}` : "";
  who.textContent = `${user.name}（${ROLE_LABELS[lang()][user.role] || user.role}${team}）`;
  const language = Object.assign(document.createElement("button"), { textContent: t("language") });
  language.className = "language";
  language.addEventListener("click", toggleLang);
  const out = Object.assign(document.createElement("button"), { textContent: t("log_out") });
  out.className = "logout";
  out.addEventListener("click", logOut);
  nav.replaceChildren(node, pages, who, language, out);
}

function mount() {
  const css = Object.assign(document.createElement("link"), { rel: "stylesheet" });
  css.href = "/static/header.css";
  document.head.append(css);
  const nav = document.createElement("nav");
  nav.className = "vw-header";
  nav.setAttribute("aria-label", "villagewatch");
  document.body.prepend(nav);
  addEventListener("langchange", () => render(nav));
  apply();
  return render(nav);
}

export const header = mount();
