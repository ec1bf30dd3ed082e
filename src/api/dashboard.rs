//! The web dashboard: one static page that reads the node's status and searches its
//! replica through the same read-only API the CLI uses.

pub const PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>ggen-p2p node</title>
<style>
 body { font: 15px/1.4 system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
 table { border-collapse: collapse; width: 100%; }
 td, th { text-align: left; padding: .3rem .6rem; border-bottom: 1px solid #ddd; }
 input { font-size: 1rem; padding: .3rem; width: 24rem; }
 code { background: #f4f4f4; padding: 0 .2rem; }
</style>
</head>
<body>
<h1>ggen-p2p node</h1>
<table id="status"></table>
<h2>Search</h2>
<form id="search"><input id="q" placeholder="e.g. rust web" autofocus> <button>Search</button></form>
<table id="results"></table>
<script>
const esc = s => String(s ?? '').replace(/[&<>"]/g, c => ({'&':'&amp;','<':'&lt;','>':'&gt;','"':'&quot;'}[c]));
async function status() {
  const s = await (await fetch('/api/v1/status')).json();
  const rows = [
    ['peer id', s.net ? s.net.peer_id : 'offline'],
    ['connected peers', s.net ? s.net.connected_peers : 0],
    ['records', s.store.records], ['packs', s.store.packages],
    ['archives', s.store.archives + ' (' + s.store.archive_bytes + ' bytes)'],
  ];
  document.getElementById('status').innerHTML =
    rows.map(([k, v]) => `<tr><th>${esc(k)}</th><td><code>${esc(v)}</code></td></tr>`).join('');
}
document.getElementById('search').onsubmit = async e => {
  e.preventDefault();
  const q = encodeURIComponent(document.getElementById('q').value);
  const r = await (await fetch('/api/v1/search?q=' + q)).json();
  document.getElementById('results').innerHTML = '<tr><th>name</th><th>version</th><th>providers</th><th>description</th></tr>' +
    (r.results || []).map(h => `<tr><td>${esc(h.package.name)}</td><td>${esc(h.package.version)}</td><td>${h.providers ?? 'unknown'}</td><td>${esc(h.package.description)}</td></tr>`).join('');
};
status(); setInterval(status, 5000);
</script>
</body>
</html>
"#;
