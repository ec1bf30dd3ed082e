// The ggen-p2p dashboard: plain JavaScript over the node's read-only JSON API
// (/api/v1/search, info, status, peers, activity) and its live feed (/api/v1/events).
// No framework, no build step: the daemon embeds this file as it is.
'use strict';

const $ = id => document.getElementById(id);
const esc = s => String(s ?? '').replace(/[&<>"']/g, c => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));

// ---- human units -------------------------------------------------------------------

function bytes(n) {
  if (n == null) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = Number(n), unit = 0;
  while (value >= 1024 && unit < units.length - 1) { value /= 1024; unit++; }
  const shown = unit === 0 ? String(value) : value.toFixed(value < 10 ? 1 : 0);
  return shown + ' ' + units[unit];
}

function ago(ms) {
  if (!ms) return '–';
  const s = Math.round((Date.now() - ms) / 1000);
  if (s < -60) return 'in the future';
  if (s < 5) return 'just now';
  if (s < 60) return s + ' s ago';
  const m = Math.round(s / 60);
  if (m < 60) return m + ' min ago';
  const h = Math.round(m / 60);
  if (h < 48) return h + ' h ago';
  const d = Math.round(h / 24);
  if (d < 60) return d + ' days ago';
  return new Date(ms).toISOString().slice(0, 10);
}

function duration(ms) {
  const s = Math.round(ms / 1000);
  if (s < 60) return s + ' s';
  return Math.floor(s / 60) + ' min ' + (s % 60) + ' s';
}

function short(id, keep = 10) {
  id = String(id ?? '');
  return id.length > keep + 2 ? id.slice(0, keep) + '…' : id;
}

function count(n, one, many) {
  return n + ' ' + (n === 1 ? one : (many || one + 's'));
}

// Refreshes "3 min ago" labels in place.
function tick() {
  document.querySelectorAll('[data-ts]').forEach(el => { el.textContent = ago(Number(el.dataset.ts)); });
}

// ---- API ---------------------------------------------------------------------------

async function api(path) {
  const response = await fetch(path, { headers: { accept: 'application/json' } });
  const body = await response.json().catch(() => ({ error: response.statusText }));
  if (!response.ok) throw new Error(body.error || response.statusText);
  return body;
}

// ---- pages -------------------------------------------------------------------------

const PAGES = ['search', 'pack', 'network', 'transfers'];
let refresh = null; // the current page's periodic refresh

function show(page) {
  for (const p of PAGES) $('page-' + p).hidden = p !== page;
  document.querySelectorAll('header nav a').forEach(a => {
    a.classList.toggle('active', a.dataset.page === page || (page === 'pack' && a.dataset.page === 'search'));
  });
}

function every(ms, work) {
  if (refresh) clearInterval(refresh);
  refresh = null;
  work();
  if (ms) refresh = setInterval(work, ms);
}

function route() {
  const hash = decodeURIComponent(location.hash.replace(/^#/, '')) || '/';
  const [path, query] = hash.split('?');
  const parts = path.split('/').filter(Boolean);
  if (parts[0] === 'pack' && parts[1]) {
    show('pack');
    const spec = parts.slice(1).join('/');
    every(5000, () => loadPack(spec));
  } else if (parts[0] === 'network') {
    show('network');
    every(2000, loadNetwork);
  } else if (parts[0] === 'transfers') {
    show('transfers');
    every(1000, loadTransfers);
  } else {
    show('search');
    every(0, () => {});
    const q = new URLSearchParams(query || '').get('q');
    if (q !== null && $('q').value !== q) $('q').value = q;
    search();
    $('q').focus();
  }
}

// ---- search ------------------------------------------------------------------------

let searchSeq = 0;
let searchTimer = null;

async function search() {
  const q = $('q').value.trim();
  const seq = ++searchSeq;
  history.replaceState(null, '', q ? '#/?q=' + encodeURIComponent(q) : '#/');
  if (!q) {
    $('results').innerHTML = '';
    $('search-note').textContent = 'Type a few words: results appear as you type.';
    return;
  }
  try {
    const report = await api('/api/v1/search?q=' + encodeURIComponent(q) + '&limit=30');
    if (seq !== searchSeq) return; // a newer query has been sent
    const results = report.results || [];
    $('search-note').textContent = results.length ? count(results.length, 'pack') + ' found' : 'No pack matches “' + q + '”.';
    $('results').innerHTML = results.map(hit => {
      const p = hit.package;
      const badges = [
        hit.compromised ? '<span class="badge bad" title="its key signed two archives for this version">compromised</span>' : '',
        hit.conflict ? '<span class="badge warn" title="more than one publisher claims this name">contested</span>' : '',
      ].join('');
      const providers = hit.providers == null ? 'providers unknown' : count(hit.providers, 'provider');
      return `<li class="result">
        <div><a class="title" href="#/pack/${encodeURIComponent(p.name)}">${esc(p.name)}</a>
          <span class="muted">${esc(p.version)}</span>${badges}</div>
        <div>${esc(p.description)}</div>
        <div class="meta">${esc(p.category || 'uncategorised')} · ${esc((p.keywords || []).join(', '))} · ${bytes(p.archive.size)} · ${providers} · published <span data-ts="${p.published_at}">${ago(p.published_at)}</span></div>
      </li>`;
    }).join('');
  } catch (e) {
    if (seq === searchSeq) $('search-note').innerHTML = '<span class="error">' + esc(e.message) + '</span>';
  }
}

$('q').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(search, 120);
});
$('search-form').addEventListener('submit', e => { e.preventDefault(); search(); });

// ---- pack page ---------------------------------------------------------------------

let packShown = null; // spec of the pack whose page is drawn (refreshes update in place)

async function loadPack(spec) {
  let info;
  try {
    info = await api('/api/v1/info?spec=' + encodeURIComponent(spec));
  } catch (e) {
    $('pack').innerHTML = '<p class="error">' + esc(e.message) + '</p>';
    packShown = null;
    return;
  }
  const p = info.package;
  const providers = info.providers == null ? 'unknown (not looked up yet)' : count(info.providers, 'peer');
  if (packShown === spec && $('pack-providers')) {
    $('pack-providers').textContent = providers; // the live part
    return;
  }
  packShown = spec;
  const compromised = new Set((info.compromised || []).map(c => c.version));
  const owner = (info.claims || []).find(c => c.publisher === p.publisher);
  let trust;
  if (info.contested) {
    trust = '<span class="badge bad">contested</span> ' + count((info.claims || []).length, 'publisher') + ' claim this name' +
      (info.owner_attested ? `; ${info.owner_attested.peers} of ${info.owner_attested.of} peers attest this owner` : '');
  } else if (owner && owner.pinned) {
    trust = '<span class="badge good">pinned</span> this key is trusted for the name (trust add / trusted_publishers)';
  } else {
    trust = '<span class="badge info">first seen</span> owner since <span data-ts="' + (owner ? owner.first_seen_at : 0) + '">' +
      ago(owner ? owner.first_seen_at : 0) + '</span> (trust on first use)';
    if ((info.claims || []).length > 1) trust += '; other keys claim it too';
  }
  const versions = (info.versions || []).map(v => {
    const marks = [
      v.yanked ? '<span class="badge warn">yanked</span>' : '',
      v.compromised || compromised.has(v.version) ? '<span class="badge bad">compromised</span>' : '',
    ].join('');
    return `<tr><td><a href="#/pack/${encodeURIComponent(p.name + '@' + v.version)}">${esc(v.version)}</a>${marks}</td>
      <td><span data-ts="${v.published_at}">${ago(v.published_at)}</span></td>
      <td class="mono" title="${esc(v.publisher)}">${esc(short(v.publisher, 16))}</td></tr>`;
  }).join('');
  const deps = Object.entries(p.dependencies || {});
  const depRows = deps.length
    ? deps.map(([name, req]) => `<tr><td><a href="#/pack/${encodeURIComponent(name)}">${esc(name)}</a></td><td class="mono">${esc(req)}</td></tr>`).join('')
    : '<tr><td colspan="2" class="muted">none</td></tr>';
  const command = 'ggen-p2p install ' + p.name + '@' + p.version;
  $('pack').innerHTML = `
    <h1 id="pack-name">${esc(p.name)} <span class="muted">${esc(p.version)}</span>
      ${p.yanked ? '<span class="badge warn">yanked</span>' : ''}
      ${compromised.has(p.version) ? '<span class="badge bad">compromised</span>' : ''}</h1>
    <p id="pack-description">${esc(p.description)}</p>
    <div class="card">
      <div class="install"><code id="install-command">${esc(command)}</code><button id="copy" type="button">Copy</button></div>
    </div>
    <dl class="facts card">
      <dt>publisher</dt><dd class="mono">${esc(p.publisher)}</dd>
      <dt>trust</dt><dd>${trust}</dd>
      <dt>providers</dt><dd id="pack-providers">${providers}</dd>
      <dt>on this node</dt><dd>${info.local ? 'archive stored here' : 'not downloaded'}</dd>
      <dt>archive</dt><dd>${bytes(p.archive.size)} · BLAKE3 <span class="mono" title="${esc(p.archive.blake3)}">${esc(short(p.archive.blake3, 16))}</span></dd>
      <dt>published</dt><dd><span data-ts="${p.published_at}">${ago(p.published_at)}</span></dd>
      <dt>category</dt><dd>${esc(p.category || '–')}</dd>
      <dt>keywords</dt><dd>${esc((p.keywords || []).join(', ') || '–')}</dd>
      <dt>authors</dt><dd>${esc((p.authors || []).join(', ') || '–')}</dd>
      <dt>license</dt><dd>${esc(p.license || '–')}</dd>
      ${p.repository ? `<dt>repository</dt><dd>${esc(p.repository)}</dd>` : ''}
    </dl>
    <h2>Versions</h2>
    <table id="versions"><thead><tr><th>version</th><th>published</th><th>publisher</th></tr></thead><tbody>${versions}</tbody></table>
    <h2>Dependencies</h2>
    <table id="dependencies"><thead><tr><th>pack</th><th>requirement</th></tr></thead><tbody>${depRows}</tbody></table>`;
  $('copy').onclick = async () => {
    try {
      await navigator.clipboard.writeText(command);
      $('copy').textContent = 'Copied';
    } catch (e) {
      const range = document.createRange();
      range.selectNodeContents($('install-command'));
      const selection = getSelection();
      selection.removeAllRanges();
      selection.addRange(range);
      $('copy').textContent = 'Press Ctrl+C';
    }
    setTimeout(() => { if ($('copy')) $('copy').textContent = 'Copy'; }, 2000);
  };
}

// ---- network page ------------------------------------------------------------------

let lastTraffic = null;

async function loadNetwork() {
  let status, peers, activity;
  try {
    [status, peers, activity] = await Promise.all([api('/api/v1/status'), api('/api/v1/peers'), api('/api/v1/activity')]);
  } catch (e) {
    $('node').innerHTML = '<dd class="error">' + esc(e.message) + '</dd>';
    return;
  }
  const net = status.net;
  if (!net) {
    $('node').innerHTML = '<dt>node</dt><dd>offline: no network is running</dd>';
    $('peers').innerHTML = '';
    return;
  }
  const traffic = activity.traffic || { bytes_in: 0, bytes_out: 0 };
  let rate = '';
  const now = Date.now();
  if (lastTraffic) {
    const seconds = Math.max(0.5, (now - lastTraffic.at) / 1000);
    rate = ` (${bytes(Math.max(0, traffic.bytes_in - lastTraffic.bytes_in) / seconds)}/s in, ` +
      `${bytes(Math.max(0, traffic.bytes_out - lastTraffic.bytes_out) / seconds)}/s out)`;
  }
  lastTraffic = { ...traffic, at: now };
  const reach = { public: 'public (reachable from outside)', private: 'private (behind NAT)', unknown: 'unknown (not probed yet)' };
  $('node').innerHTML = `
    <dt>peer id</dt><dd class="mono">${esc(net.peer_id)}</dd>
    <dt>listening on</dt><dd class="mono">${(net.listen_addrs || []).map(esc).join('<br>') || '–'}</dd>
    <dt>reachability</dt><dd id="reachability">${esc(reach[net.reachability] || net.reachability)}</dd>
    <dt>DHT routing table</dt><dd id="dht-size">${count(net.routing_table_size, 'peer')}</dd>
    <dt>gossip mesh</dt><dd>${count(net.gossip_mesh_peers, 'peer')}</dd>
    <dt>relay</dt><dd>${net.relay_server ? 'serving as a relay' : 'not a relay'}${(net.relay_reservations || []).length ? '; reachable through ' + count(net.relay_reservations.length, 'relay') : ''}</dd>
    <dt>traffic</dt><dd id="traffic">${bytes(traffic.bytes_in)} in · ${bytes(traffic.bytes_out)} out${rate}</dd>`;
  const list = peers.peers || [];
  $('peer-count').textContent = '(' + list.length + ')';
  $('peers').innerHTML = list.length ? list.map(p => `<tr>
      <td class="mono" title="${esc(p.peer_id)}">${esc(short(p.peer_id, 16))}</td>
      <td>${p.connection === 'relayed' ? '<span class="badge warn">relayed</span>' : '<span class="badge good">' + esc(p.connection || 'direct') + '</span>'}</td>
      <td>${Number(p.score).toFixed(1)}${p.gossip_score != null ? ' <span class="muted small">gossip ' + Number(p.gossip_score).toFixed(1) + '</span>' : ''}</td>
      <td>${p.rtt_ms != null ? p.rtt_ms + ' ms' : '–'}</td>
      <td>${esc(p.agent || '–')}</td>
      <td class="mono small">${esc((p.addrs || [])[0] || '–')}</td></tr>`).join('')
    : '<tr><td colspan="6" class="muted">No peer connected.</td></tr>';
  const swarms = net.swarms || [];
  $('swarm-count').textContent = '(' + swarms.length + ')';
  $('swarms').innerHTML = swarms.length ? swarms.map(s => {
    const share = s.chunk_count ? (100 * s.chunks_held) / s.chunk_count : 0;
    return `<tr>
      <td class="mono" title="${esc(s.archive)}">${esc(short(s.archive, 16))}</td>
      <td>${s.downloading ? '<span class="badge warn">downloading</span>' : '<span class="badge good">seeding</span>'}</td>
      <td>${s.chunks_held} of ${s.chunk_count}<div class="bar"><span style="width:${share.toFixed(1)}%"></span></div></td>
      <td>${s.peers}</td>
      <td>${bytes(s.upload_bytes_per_s || 0)}/s <span class="muted small">${bytes(s.bytes_uploaded || 0)} in all</span></td>
      <td>${bytes(s.download_bytes_per_s || 0)}/s <span class="muted small">${bytes(s.bytes_downloaded || 0)} in all</span></td></tr>`;
  }).join('') : '<tr><td colspan="6" class="muted">No swarm: nothing is being fetched through this node now.</td></tr>';
}

// ---- transfers page ----------------------------------------------------------------

function drawTransferCount(transfers) {
  const badge = $('transfer-count');
  badge.hidden = transfers.length === 0;
  badge.textContent = transfers.length;
}

async function loadTransfers() {
  let activity;
  try {
    activity = await api('/api/v1/activity');
  } catch (e) {
    $('transfers').innerHTML = '<p class="error">' + esc(e.message) + '</p>';
    return;
  }
  const transfers = activity.transfers || [];
  drawTransferCount(transfers);
  $('transfers').innerHTML = transfers.length ? transfers.map(t => {
    const share = t.total ? Math.min(100, (100 * t.done) / t.total) : 0;
    const elapsed = Math.max(1, Date.now() - t.started_at);
    const speed = t.done / (elapsed / 1000);
    const left = speed > 0 ? duration(((t.total - t.done) / speed) * 1000) + ' left' : 'starting';
    return `<div class="card transfer">
      <div><a href="#/pack/${encodeURIComponent(t.name)}">${esc(t.name)}</a> <span class="muted">${esc(t.version)}</span></div>
      <div class="bar"><span style="width:${share.toFixed(1)}%"></span></div>
      <div class="muted small">${bytes(t.done)} of ${bytes(t.total)} (${share.toFixed(0)} %) · ${bytes(speed)}/s · ${left} · started <span data-ts="${t.started_at}">${ago(t.started_at)}</span></div>
    </div>`;
  }).join('') : '<p class="muted">No downloads in progress. Start one with <code>ggen-p2p install NAME</code>.</p>';
}

// ---- header summary ----------------------------------------------------------------

async function summary() {
  try {
    const [status, activity] = await Promise.all([api('/api/v1/status'), api('/api/v1/activity')]);
    const s = status.store;
    const peers = status.net ? count(status.net.connected_peers, 'peer') : 'offline';
    $('summary').textContent = `${peers} · ${count(s.packages, 'pack')} · ${count(s.records, 'record')} · ${bytes(s.archive_bytes)} of archives`;
    $('summary').title = status.net ? 'node ' + status.net.peer_id : '';
    drawTransferCount(activity.transfers || []);
  } catch (e) {
    $('summary').textContent = 'node unreachable: ' + e.message;
  }
}

// ---- live feed ---------------------------------------------------------------------

function feedState(text, cls) {
  const el = $('feed-state');
  el.textContent = text;
  el.className = 'pill ' + (cls || '');
}

function connectFeed() {
  const source = new EventSource('/api/v1/events');
  source.addEventListener('hello', () => feedState('live', 'live'));
  source.addEventListener('record', e => {
    const r = JSON.parse(e.data);
    $('feed-empty').hidden = true;
    const li = document.createElement('li');
    li.className = 'fresh';
    li.dataset.name = r.name || '';
    let what;
    if (r.kind === 'version') what = `<a href="#/pack/${encodeURIComponent(r.name)}">${esc(r.name)}</a> ${esc(r.version)} published`;
    else if (r.kind === 'yank') what = `<a href="#/pack/${encodeURIComponent(r.name)}">${esc(r.name)}</a> ${esc(r.version)} yanked`;
    else what = 'publisher key rotated';
    li.innerHTML = `<div class="what">${what}</div>
      ${r.description ? '<div class="small">' + esc(r.description) + '</div>' : ''}
      <div class="muted small">by <span class="mono" title="${esc(r.publisher)}">${esc(short(r.publisher))}</span> · <span data-ts="${r.received_at}">${ago(r.received_at)}</span></div>`;
    $('feed').prepend(li);
    while ($('feed').children.length > 50) $('feed').lastElementChild.remove();
    // Pages showing what just changed are redrawn.
    if (!$('page-search').hidden && $('q').value.trim()) search();
    if (!$('page-pack').hidden && packShown && r.name && packShown.split('@')[0] === r.name) {
      const spec = packShown;
      packShown = null;
      loadPack(spec);
    }
    summary();
  });
  source.addEventListener('lagged', e => feedState('live (skipped ' + e.data + ')', 'live'));
  source.onerror = () => feedState('reconnecting…', 'down'); // EventSource retries by itself
}

// ---- start -------------------------------------------------------------------------

window.addEventListener('hashchange', route);
route();
summary();
setInterval(summary, 5000);
setInterval(tick, 10000);
connectFeed();
