// The edgefed dashboard: log in against this site's Keystone, then poll the fleet API.
const TOKEN_KEY = "edgefed.token";
const POLL_MS = 2000;
const $ = (sel) => document.querySelector(sel);
let sortKey = "name";
let sortAsc = true;
let lastStatus = null;
let selected = null;

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function login(event) {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = { auth: {
    identity: { methods: ["password"], password: { user: {
      name: form.get("username"), domain: { id: "default" }, password: form.get("password") } } },
    scope: { project: { name: form.get("project"), domain: { id: "default" } } } } };
  const r = await fetch("/identity/v3/auth/tokens", {
    method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) });
  if (r.status !== 201) {
    $("#login-error").textContent = `Login failed (${r.status})`;
    return;
  }
  const data = await r.json();
  sessionStorage.setItem(TOKEN_KEY, r.headers.get("X-Subject-Token"));
  sessionStorage.setItem("edgefed.user", data.token.user.name);
  show();
}

async function api(path) {
  const r = await fetch(path, { headers: { "X-Auth-Token": token() } });
  if (r.status === 401) { logout(); throw new Error("session expired"); }
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.json();
}

function logout() { sessionStorage.clear(); show(); }

function el(tag, attrs = {}, text = "") {
  const node = document.createElementNS(
    ["svg", "circle", "text", "line", "rect"].includes(tag) ? "http://www.w3.org/2000/svg" : "http://www.w3.org/1999/xhtml", tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== "") node.textContent = text;
  return node;
}

function alarmCount(site) {
  if (!site.alarms) return -1;
  return Object.values(site.alarms).reduce((a, b) => a + b, 0);
}

function cell(site, key) {
  switch (key) {
    case "vcpus": return site.capacity ? site.capacity.vcpus.percent : -1;
    case "ram": return site.capacity ? site.capacity.ram_mb.percent : -1;
    case "servers": return site.servers ? site.servers.total : -1;
    case "alarms": return alarmCount(site);
    default: return site[key] ?? "";
  }
}

function drawMap(sites) {
  const svg = $("#map");
  svg.replaceChildren();
  for (let lon = -180; lon <= 180; lon += 30) svg.append(el("line", { class: "grid", x1: lon + 180, y1: 0, x2: lon + 180, y2: 180 }));
  for (let lat = -90; lat <= 90; lat += 30) svg.append(el("line", { class: "grid", x1: 0, y1: 90 - lat, x2: 360, y2: 90 - lat }));
  svg.setAttribute("viewBox", "0 0 360 180");
  const used = new Map();
  for (const site of sites) {
    const key = `${site.location.lon},${site.location.lat}`;
    const nth = used.get(key) ?? 0;  // sites at the same place fan out
    used.set(key, nth + 1);
    const x = site.location.lon + 180 + nth * 12, y = 90 - site.location.lat + nth * 6;
    const dot = el("circle", { cx: x, cy: y, r: 4, class: site.status, "data-site": site.name });
    dot.append(el("title", {}, `${site.name}: ${site.status} — ${site.reason}`));
    dot.addEventListener("click", () => drill(site.name));
    svg.append(dot, el("text", { x: x + 5, y: y - 4, style: "font-size:6px" }, site.name));
  }
}

function drawTable(sites) {
  const rows = [...sites].sort((a, b) => {
    const x = cell(a, sortKey), y = cell(b, sortKey);
    return (x < y ? -1 : x > y ? 1 : 0) * (sortAsc ? 1 : -1);
  });
  const body = $("#sites tbody");
  body.replaceChildren(...rows.map((s) => {
    const tr = el("tr", { class: "site", "data-site": s.name });
    const counts = s.alarms ? Object.entries(s.alarms).filter(([, n]) => n).map(([k, n]) => `${n} ${k}`).join(", ") || "0" : "-";
    const values = [s.name, s.region, s.status, s.capacity ? s.capacity.vcpus.percent : "-",
      s.capacity ? s.capacity.ram_mb.percent : "-", s.servers ? s.servers.total : "-", counts, s.reason];
    values.forEach((v, i) => tr.append(el("td", i === 2 ? { class: s.status } : {}, String(v))));
    tr.addEventListener("click", () => drill(s.name));
    return tr;
  }));
}

function drawAlarms(sites) {
  const alarms = sites.flatMap((s) => s.active_alarms);
  $("#alarms tbody").replaceChildren(...alarms.map((a) => {
    const tr = el("tr", { class: "alarm" });
    [a.site, a.severity, a.type, a.entity, a.reason, a.raised_at].forEach((v, i) =>
      tr.append(el("td", i === 1 ? { class: a.severity } : {}, String(v))));
    return tr;
  }));
}

function drawHeatmap(status) {
  const names = status.sites.map((s) => s.name);
  const grid = $("#heatmap");
  grid.style.gridTemplateColumns = `repeat(${names.length + 1}, minmax(4em, 1fr))`;
  const cells = [el("div", { class: "head" }, "from \\ to"), ...names.map((n) => el("div", { class: "head" }, n))];
  for (const a of names) {
    cells.push(el("div", { class: "head" }, a));
    for (const b of names) {
      const ms = a === b ? 0 : status.rtt_ms[a]?.[b];
      const hue = ms === undefined ? 0 : Math.max(0, 120 - ms * 0.6);
      const style = ms === undefined ? "background:#eee" : `background:hsl(${hue},70%,75%)`;
      cells.push(el("div", { style, title: `${a} → ${b}` }, ms === undefined ? "–" : ms.toFixed(0)));
    }
  }
  grid.replaceChildren(...cells);
}

async function drawSync() {
  try {
    const data = await api("/edge/v1/sync/progress");
    $("#sync").textContent = JSON.stringify(data, null, 1).slice(0, 2000);
  } catch { /* no sync service on this site */ }
}

const RESOURCES = [["vcpus", "vCPUs", ""], ["ram_mb", "RAM", " MB"], ["disk_gb", "Disk", " GB"],
  ["volume_gb", "Volumes", " GB"]];

// An HTML element with attributes and children (nodes or strings).
function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  node.append(...children);
  return node;
}

function bar(label, values, unit) {
  const pct = values.total ? (100 * values.used) / values.total : 0;
  const level = pct >= 90 ? "high" : pct >= 70 ? "mid" : "low";
  return h("div", { class: "capacity-row", "data-resource": label },
    h("span", { class: "label" }, label),
    h("div", { class: "bar" }, h("span", { class: `fill ${level}`, style: `width:${Math.min(100, pct).toFixed(1)}%` })),
    h("span", { class: "figures" }, `${values.used} / ${values.total}${unit} (${pct.toFixed(0)}%)`));
}

function table(cls, head, rows) {
  return h("table", { class: cls },
    h("thead", {}, h("tr", {}, ...head.map((t) => h("th", {}, t)))), h("tbody", {}, ...rows));
}

function part(title, ...children) {
  return h("div", { class: "detail-part" }, h("h3", {}, title), ...children);
}

function rttCells(site) {
  const entries = Object.entries(site.rtt_ms || {}).sort(([a], [b]) => a.localeCompare(b));
  if (!entries.length) return h("p", { class: "muted" }, "No RTT measured yet.");
  return h("div", { class: "rtt-row" }, ...entries.map(([peer, ms]) => h("span",
    { class: "rtt", "data-peer": peer, style: `background:hsl(${Math.max(0, 120 - ms * 0.6)},70%,80%)` },
    `${peer} ${ms.toFixed(0)} ms`)));
}

function siteDetail(site) {
  const loc = site.location || {};
  const where = [loc.country, loc.region, `${(loc.lat ?? 0).toFixed(2)}, ${(loc.lon ?? 0).toFixed(2)}`]
    .filter(Boolean).join(" · ");
  const labels = Object.entries(site.labels || {}).map(([k, v]) => h("span", { class: "chip" }, `${k}=${v}`));
  const parts = [
    h("p", { class: "headline" }, h("span", { class: `badge ${site.status}` }, site.status), ` ${site.reason}`),
    h("dl", { class: "facts" },
      h("dt", {}, "Region"), h("dd", { "data-fact": "region" }, site.region || "–"),
      h("dt", {}, "Location"), h("dd", {}, where),
      h("dt", {}, "Labels"), h("dd", {}, ...(labels.length ? labels : ["–"])),
      h("dt", {}, "Reported by"),
      h("dd", {}, `${site.reported_by} at ${new Date(site.reported_at * 1000).toLocaleTimeString()}`)),
  ];
  if (!site.capacity) {
    parts.push(h("p", { class: "muted" }, `No report from ${site.name}: ${site.reason}`));
    return parts;
  }
  const shown = RESOURCES.filter(([key]) => site.capacity[key]);  // volumes: where a site has them
  parts.push(part("Capacity", ...shown.map(([key, label, unit]) => bar(label, site.capacity[key], unit))));
  const states = Object.entries(site.servers.by_state).map(([k, n]) => h("span", { class: "chip" }, `${n} ${k}`));
  parts.push(part(`Servers (${site.servers.total})`,
    h("div", {}, ...(states.length ? states : [h("span", { class: "muted" }, "none")]))));
  const hosts = (site.host_details || []).map((x) => h("tr", { class: "host", "data-host": x.name },
    h("td", {}, x.name), h("td", { class: x.availability === "down" ? "offline" : "online" }, x.availability),
    h("td", {}, String(x.servers)), h("td", {}, `${x.vcpus.used} / ${x.vcpus.total}`),
    h("td", {}, `${x.ram_mb.used} / ${x.ram_mb.total}`), h("td", {}, `${x.disk_gb.used} / ${x.disk_gb.total}`)));
  parts.push(part(`Hosts (${site.hosts}, ${site.hosts_down} down)`,
    table("hosts", ["Host", "Availability", "Servers", "vCPUs", "RAM MB", "Disk GB"], hosts)));
  const alarms = site.active_alarms.map((a) => h("tr", { class: "site-alarm" },
    h("td", { class: a.severity }, a.severity), h("td", {}, a.type), h("td", {}, a.entity),
    h("td", {}, a.reason), h("td", {}, a.raised_at)));
  parts.push(part(`Active alarms (${alarms.length})`, alarms.length
    ? table("site-alarms", ["Severity", "Type", "Entity", "Reason", "Raised"], alarms)
    : h("p", { class: "muted" }, "None.")));
  parts.push(part("RTT to other sites", rttCells(site)));
  return parts;
}

async function drill(name) {
  selected = name;
  const site = lastStatus?.sites.find((s) => s.name === name);
  if (!site) return;
  $("#detail").hidden = false;
  $("#detail-title").textContent = `Site ${name}`;
  $("#detail-body").replaceChildren(...siteDetail(site));
}

async function refresh() {
  if (!token()) return;
  try {
    const status = (await api("/edge/v1/fleet/status")).fleet_status;
    lastStatus = status;
    const t = status.totals;
    $("#summary").textContent = `${t.sites} sites: ${t.by_status.online} online, ${t.by_status.degraded} degraded, ` +
      `${t.by_status.offline} offline — reported by ${status.reporter}`;
    drawMap(status.sites);
    drawTable(status.sites);
    drawAlarms(status.sites);
    drawHeatmap(status);
    if (selected) drill(selected);
  } catch (err) {
    $("#summary").textContent = `Cannot load the fleet status: ${err.message}`;
  }
  drawSync();
}

function show() {
  const logged = Boolean(token());
  $("#login").hidden = logged;
  $("#fleet").hidden = !logged;
  $("#logout").hidden = !logged;
  $("#who").textContent = logged ? sessionStorage.getItem("edgefed.user") : "";
  if (logged) refresh();
}

$("#login").addEventListener("submit", login);
$("#logout").addEventListener("click", logout);
$("#detail-close").addEventListener("click", () => { selected = null; $("#detail").hidden = true; });
document.querySelectorAll("#sites th[data-key]").forEach((th) => th.addEventListener("click", () => {
  sortAsc = sortKey === th.dataset.key ? !sortAsc : true;
  sortKey = th.dataset.key;
  if (lastStatus) drawTable(lastStatus.sites);
}));
setInterval(refresh, POLL_MS);
show();
