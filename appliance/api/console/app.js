// VoiceBlock console: hash-routed views over the box's own /api/ routes.
// No framework, no build step; everything is served by the box (CSP: self).
'use strict';

const main = document.getElementById('main');
const login = document.getElementById('login');
let talk = null; // the running talk session, if any

function token() { return sessionStorage.getItem('vb-token') || ''; }

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined) continue;
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}

function show(...nodes) { main.replaceChildren(...nodes); }

// GET an API route: {status, body}; 401 asks for the token.
async function api(path) {
  const headers = {};
  if (token()) headers.Authorization = 'Bearer ' + token();
  const r = await fetch(path, { headers, cache: 'no-store' });
  let body = null;
  try { body = await r.json(); } catch (_) { body = null; }
  if (r.status === 401) { askToken(body && body.error); throw new Error('token needed'); }
  return { status: r.status, body };
}

function askToken(why) {
  login.classList.remove('hidden');
  main.classList.add('hidden');
  document.getElementById('login-error').textContent = token() ? (why || 'token refused') : '';
  document.getElementById('token').focus();
}

login.addEventListener('submit', (ev) => {
  ev.preventDefault();
  sessionStorage.setItem('vb-token', document.getElementById('token').value.trim());
  login.classList.add('hidden');
  main.classList.remove('hidden');
  route();
});

function when(ms) {
  if (!ms) return '';
  const d = new Date(ms);
  return d.toLocaleString();
}

function secs(ms) { return (ms / 1000).toFixed(1) + ' s'; }

function interest(cls) {
  return el('span', { class: 'badge interest-' + (cls || 'cold'), 'data-interest': cls }, (cls || '').replace('_', ' '));
}

function failed(what, r) {
  return el('p', { class: 'bad' }, `${what}: ${(r.body && r.body.error) || 'HTTP ' + r.status}`);
}

// --- calls ---------------------------------------------------------------

// The calls list's filters: the API's query parameters, kept in the hash
// (#/calls?robot=...) so a filtered list can be bookmarked and goes back.
const CALL_FILTERS = ['robot', 'result', 'caller', 'direction', 'lead'];
const PAGE = 100;

function callFilters(q, calls) {
  const seen = (k) => [...new Set(calls.map((c) => c[k]).filter(Boolean))].sort();
  const text = (name, label, list) => el('label', {}, label,
    el('input', { name, value: q.get(name) || '', list: list ? 'f-' + name : null, maxlength: 128, autocomplete: 'off' }),
    list ? el('datalist', { id: 'f-' + name }, list.map((v) => el('option', { value: v }))) : null);
  const pick = (name, label, opts) => {
    const s = el('select', { name }, opts.map(([v, t]) => el('option', { value: v }, t)));
    s.value = q.get(name) || '';
    return el('label', {}, label, s);
  };
  const form = el('form', { id: 'call-filters', class: 'filters' },
    text('robot', 'Robot', seen('robot')),
    text('result', 'End', seen('end_reason')),
    text('caller', 'Caller contains'),
    pick('direction', 'Direction', [['', 'any'], ['inbound', 'inbound'], ['outbound', 'outbound']]),
    pick('lead', 'Lead', [['', 'any'], ['true', 'with a lead'], ['false', 'without']]),
    el('span', {}, el('button', { type: 'submit' }, 'Filter'), ' ',
      el('button', { type: 'button', class: 'secondary', id: 'clear-filters' }, 'Clear')));
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const p = new URLSearchParams();
    for (const k of CALL_FILTERS) { const v = form.elements[k].value.trim(); if (v) p.set(k, v); }
    location.hash = '#/calls' + (p.toString() ? '?' + p : '');
  });
  form.querySelector('#clear-filters').addEventListener('click', () => { location.hash = '#/calls'; });
  return form;
}

async function viewCalls(query) {
  const q = new URLSearchParams(query || '');
  const p = new URLSearchParams();
  for (const k of CALL_FILTERS) if (q.get(k)) p.set(k, q.get(k));
  const offset = Math.max(0, parseInt(q.get('offset') || '0', 10) || 0);
  p.set('limit', PAGE);
  if (offset) p.set('offset', offset);
  const r = await api('/api/calls?' + p);
  if (r.status !== 200) return show(el('h1', {}, 'Calls'), callFilters(q, []), failed('Cannot list calls', r));
  const calls = r.body.calls || [];
  const rows = calls.map((c) => el('tr', { 'data-call': c.id },
    el('td', { 'data-label': 'When' }, el('a', { href: '#/calls/' + encodeURIComponent(c.id) }, when(c.started_at))),
    el('td', { 'data-label': 'Caller' }, c.caller || '—'),
    el('td', { 'data-label': 'Robot' }, c.robot),
    el('td', { 'data-label': 'Turns' }, c.turns),
    el('td', { 'data-label': 'Length' }, secs(c.ended_at - c.started_at)),
    el('td', { 'data-label': 'End' }, c.end_reason)));
  const filtered = CALL_FILTERS.some((k) => q.get(k));
  const page = (o) => { const n = new URLSearchParams(q); if (o) n.set('offset', o); else n.delete('offset'); return '#/calls?' + n; };
  show(el('h1', {}, 'Calls'), callFilters(q, calls),
    calls.length === 0 ? el('p', { class: 'mute', id: 'empty' }, filtered || offset ? 'No calls match.' : 'No calls yet. Try the Talk page.') :
      el('table', { class: 'list', id: 'calls' },
        el('thead', {}, el('tr', {}, ['When', 'Caller', 'Robot', 'Turns', 'Length', 'End'].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows)),
    el('p', { class: 'pager' },
      offset ? el('a', { href: page(Math.max(0, offset - PAGE)), id: 'newer' }, '← Newer') : null, ' ',
      calls.length === PAGE ? el('a', { href: page(offset + PAGE), id: 'older' }, 'Older →') : null));
}

const STAGES = [
  ['endpoint_ms', 'endpoint', 'end of speech (endpointer)'],
  ['stt_ms', 'stt', 'speech to text'],
  ['reply_ms', 'reply', 'reply (dialog / model)'],
  ['first_audio_ms', 'tts', 'first audio (TTS)'],
];

function legend() {
  return el('div', { class: 'legend' }, STAGES.map(([, c, label]) => el('span', {}, el('i', { class: 'seg-' + c }), label)));
}

// One turn's stacked timing bar, scaled to `scale` ms for the full width.
function timingBar(t, scale) {
  if (!t) return null;
  const segs = STAGES.map(([k, c, label]) => {
    const ms = t[k] || 0;
    const w = scale > 0 ? Math.max(0, (100 * ms) / scale) : 0;
    return el('span', { class: 'seg-' + c, title: `${label}: ${ms} ms`, 'data-ms': ms, 'data-w': w.toFixed(2) });
  });
  const bar = el('div', { class: 'bar', role: 'img', 'aria-label': `turn latency ${t.turn_latency_ms || 0} ms` }, segs);
  // Widths set through CSSOM (the CSP allows no inline style attributes).
  segs.forEach((s) => { s.style.width = s.dataset.w + '%'; });
  const words = STAGES.map(([k, c]) => `${c} ${t[k] || 0}`).join(' · ');
  return el('div', { class: 'timing' }, bar, `${t.turn_latency_ms || 0} ms to first robot audio (${words} ms)`);
}

function turnView(t, scale) {
  const caller = t.caller_text !== undefined ? t.caller_text : t.caller_transcript;
  const robot = t.robot_text !== undefined ? t.robot_text : t.robot_reply;
  return el('div', { class: 'turn', 'data-turn': t.index },
    t.index > 0 ? el('p', { class: 'caller' }, el('span', { class: 'who' }, 'Caller'), caller || el('em', { class: 'mute' }, '(silence)')) : null,
    el('p', { class: 'robot' }, el('span', { class: 'who' }, 'Robot'), robot),
    t.index > 0 ? timingBar(t.timings, scale) : null);
}

function scaleOf(turns) {
  return Math.max(1000, ...turns.filter((t) => t.index > 0).map((t) => (t.timings && t.timings.turn_latency_ms) || 0));
}

async function viewCall(id) {
  const r = await api('/api/calls/' + encodeURIComponent(id));
  if (r.status !== 200) return show(el('h1', {}, 'Call'), failed('Cannot read the call', r));
  const c = r.body;
  const turns = c.turns || [];
  const scale = scaleOf(turns);
  show(el('p', {}, el('a', { href: '#/calls' }, '← Calls')),
    el('h1', {}, 'Call ', el('span', { class: 'mute' }, c.id)),
    el('dl', { class: 'kv' },
      el('dt', {}, 'Started'), el('dd', {}, when(c.started_at)),
      el('dt', {}, 'Caller'), el('dd', {}, c.caller || '—'),
      el('dt', {}, 'Robot'), el('dd', {}, `${c.robot} (${c.mode}, ${c.language})`),
      el('dt', {}, 'Length'), el('dd', {}, secs(c.ended_at - c.started_at)),
      el('dt', {}, 'End'), el('dd', {}, c.end_reason),
      el('dt', {}, 'Lead'), el('dd', {}, c.has_lead ? el('a', { href: '#/leads' }, 'yes') : 'no')),
    c.audio ? recordingPlayer(c.audio) : null,
    el('h2', {}, 'Transcript'), legend(),
    el('div', { id: 'transcript' }, turns.map((t) => turnView(t, scale))));
}

// An <audio src> cannot send the token, so the recording is fetched with
// it on demand (nothing is downloaded until asked) and played from a blob.
let audioUrl = null;
function dropAudio() { if (audioUrl) { URL.revokeObjectURL(audioUrl); audioUrl = null; } }

function recordingPlayer(path) {
  const audio = el('audio', { controls: '', preload: 'none', id: 'call-audio' });
  const b = el('button', { type: 'button', class: 'secondary', id: 'load-audio' }, 'Play recording');
  const note = el('span', { class: 'mute', id: 'audio-status' });
  b.addEventListener('click', async () => {
    b.disabled = true; note.textContent = ' Loading…'; note.className = 'mute';
    const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
    try {
      const r = await fetch(path, { headers, cache: 'no-store' });
      if (!r.ok) {
        let why = 'HTTP ' + r.status;
        try { why = (await r.json()).error || why; } catch (_) { /* not JSON */ }
        note.textContent = ' ' + why; note.className = 'bad'; b.disabled = false;
        return;
      }
      dropAudio();
      audioUrl = URL.createObjectURL(await r.blob());
      audio.src = audioUrl;
      note.textContent = ''; b.remove();
      audio.play().catch(() => { /* the controls are there */ });
    } catch (e) {
      note.textContent = ' ' + e.message; note.className = 'bad'; b.disabled = false;
    }
  });
  return el('div', { class: 'panel', id: 'recording' }, el('h2', {}, 'Recording'), audio, el('p', {}, b, note));
}

// --- leads ---------------------------------------------------------------

async function viewLeads() {
  const r = await api('/api/leads?limit=1000');
  if (r.status !== 200) return show(el('h1', {}, 'Leads'), failed('Cannot list leads', r));
  const leads = (r.body.leads || []).slice().reverse(); // newest first
  const rows = leads.map((l) => el('tr', { 'data-lead': l.call_id },
    el('td', { 'data-label': 'Interest' }, interest(l.interest)),
    el('td', { 'data-label': 'Name' }, l.name || '—'),
    el('td', { 'data-label': 'Phone' }, l.phone || '—'),
    el('td', { 'data-label': 'Request' }, l.summary || l.request || '—'),
    el('td', { 'data-label': 'Call' }, el('a', { href: '#/calls/' + encodeURIComponent(l.call_id) }, l.stored_at.replace('T', ' ').slice(0, 19))),
    el('td', { 'data-label': 'Sent' }, l.delivered ? 'yes' : 'waiting')));
  show(el('h1', {}, 'Leads'),
    el('p', {}, csvButton()),
    leads.length === 0 ? el('p', { class: 'mute', id: 'empty' }, 'No leads yet.') :
      el('table', { class: 'list', id: 'leads' },
        el('thead', {}, el('tr', {}, ['Interest', 'Name', 'Phone', 'Request', 'Call', 'Sent'].map((h) => el('th', {}, h)))),
        el('tbody', {}, rows)));
}

// The CSV export needs the token in a header, so it is fetched and saved
// from a blob rather than linked.
function csvButton() {
  const b = el('button', { type: 'button', class: 'secondary', id: 'csv' }, 'Export CSV');
  b.addEventListener('click', async () => {
    const headers = token() ? { Authorization: 'Bearer ' + token() } : {};
    const r = await fetch('/api/leads.csv', { headers, cache: 'no-store' });
    if (!r.ok) { b.textContent = 'Export failed: HTTP ' + r.status; return; }
    const a = el('a', { href: URL.createObjectURL(await r.blob()), download: 'leads.csv' });
    document.body.append(a); a.click(); a.remove();
  });
  return b;
}

// --- queue ---------------------------------------------------------------

function table(items) {
  const keys = [...new Set(items.flatMap((i) => Object.keys(i)))].slice(0, 8);
  return el('table', { class: 'list' },
    el('thead', {}, el('tr', {}, keys.map((k) => el('th', {}, k)))),
    el('tbody', {}, items.map((i) => el('tr', {}, keys.map((k) => el('td', { 'data-label': k }, typeof i[k] === 'object' && i[k] !== null ? JSON.stringify(i[k]) : i[k]))))));
}

async function viewQueue() {
  const [stats, jobs] = await Promise.all([api('/api/queue/stats'), api('/api/queue?limit=200')]);
  if (stats.status === 404) {
    return show(el('h1', {}, 'Queue'), el('p', { class: 'mute', id: 'queue-unavailable' },
      'The outbound call queue is not available on this box (its API answers 404).'));
  }
  if (stats.status !== 200) return show(el('h1', {}, 'Queue'), failed('Cannot read the queue', stats));
  if (jobs.status !== 200) return show(el('h1', {}, 'Queue'), failed('Cannot read the queue', jobs));
  // The columns an operator looks at, in this order.
  const cols = ['number', 'name', 'priority', 'state', 'attempts', 'last_result', 'next_at', 'reason'];
  const items = (jobs.body.jobs || []).map((j) => Object.fromEntries(cols.map((k) => [k, j[k] ?? ''])));
  show(el('h1', {}, 'Queue'), kv(stats.body),
    items.length ? table(items) : el('p', { class: 'mute', id: 'queue-empty' }, 'No jobs in the queue.'));
}

// --- health, config ------------------------------------------------------

async function viewHealth() {
  const live = await fetch('/api/health/live', { cache: 'no-store' }).then((r) => r.ok).catch(() => false);
  const r = await api('/api/health/ready');
  const b = r.body || {};
  const checks = b.checks || [];
  show(el('h1', {}, 'Health'),
    el('p', { id: 'live' }, 'Live: ', el('strong', { class: live ? 'ok' : 'bad' }, live ? 'yes' : 'no')),
    el('p', { id: 'ready' }, 'Ready: ', el('strong', { class: b.ready ? 'ok' : 'bad' }, b.ready ? 'yes' : 'no'),
      (b.reasons || []).length ? el('span', { class: 'bad' }, ' — ' + b.reasons.join('; ')) : null),
    el('table', { class: 'list', id: 'checks' },
      el('thead', {}, el('tr', {}, ['Check', 'State', 'Detail'].map((h) => el('th', {}, h)))),
      el('tbody', {}, checks.map((c) => el('tr', {},
        el('td', { 'data-label': 'Check' }, c.name),
        el('td', { 'data-label': 'State' }, el('span', { class: c.ok ? 'ok' : 'bad' }, c.ok ? 'ok' : 'failing')),
        el('td', { 'data-label': 'Detail' }, c.reason || '')))))); 
}

function kv(obj) {
  return el('dl', { class: 'kv' }, Object.entries(obj).map(([k, v]) => [
    el('dt', {}, k),
    el('dd', { 'data-key': k }, v !== null && typeof v === 'object' && !Array.isArray(v) ? kv(v) :
      Array.isArray(v) ? v.join(', ') : v === null ? '—' : String(v)),
  ]));
}

async function viewConfig() {
  const r = await api('/api/config');
  if (r.status !== 200) return show(el('h1', {}, 'Config'), failed('Cannot read the config', r));
  show(el('h1', {}, 'Config'), el('p', { class: 'mute' }, 'In force now; secrets are shown only as set or not.'),
    el('div', { id: 'config' }, kv(r.body)));
}

// --- talk ----------------------------------------------------------------

function viewTalk() {
  const status = el('p', { id: 'talk-status', class: 'mute' }, 'Not connected.');
  const start = el('button', { id: 'talk-start', type: 'button' }, 'Start talking');
  const stop = el('button', { id: 'talk-stop', type: 'button', class: 'secondary' }, 'Hang up');
  stop.disabled = true;
  const transcript = el('div', { id: 'talk-transcript' });
  start.addEventListener('click', () => startTalk(status, start, stop, transcript));
  stop.addEventListener('click', () => { if (talk) talk.hangup(); });
  show(el('h1', {}, 'Talk to the robot'),
    el('p', { class: 'mute' }, 'Your microphone goes to the same call loop a phone call uses; the robot answers through your speaker. Headphones avoid echo.'),
    el('div', { class: 'panel' }, start, ' ', stop, status),
    legend(), transcript);
}

async function startTalk(status, start, stop, transcript) {
  if (talk) return;
  start.disabled = true;
  status.textContent = 'Opening the microphone…';
  const stats = { robotSamples: 0, playedSamples: 0, turns: [], ended: null, error: null };
  window.vbTalk = stats;
  let stream, ctx, ws;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ audio: { channelCount: 1, echoCancellation: true, noiseSuppression: true } });
    ctx = new AudioContext();
    await ctx.audioWorklet.addModule('/console/talk-worklet.js');
  } catch (e) {
    status.textContent = 'No microphone: ' + e.message + ' (the page must be opened over https or from localhost).';
    status.className = 'bad';
    start.disabled = false;
    return;
  }
  const mic = ctx.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(ctx, 'vb-downsampler');
  const sink = ctx.createGain(); sink.gain.value = 0; // keeps the worklet pulled, silently
  mic.connect(node); node.connect(sink); sink.connect(ctx.destination);
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const q = token() ? '?token=' + encodeURIComponent(token()) : '';
  ws = new WebSocket(`${proto}//${location.host}/api/talk${q}`);
  ws.binaryType = 'arraybuffer';
  let next = 0;
  let scale = 1000;
  const finish = (why) => {
    if (!talk) return;
    talk = null;
    try { node.disconnect(); mic.disconnect(); } catch (_) { /* already */ }
    stream.getTracks().forEach((t) => t.stop());
    setTimeout(() => ctx.close(), 1500);
    status.textContent = 'Ended: ' + why;
    stats.ended = why;
    start.disabled = false; stop.disabled = true;
  };
  talk = { hangup: () => { if (ws.readyState === 1) ws.send(JSON.stringify({ type: 'hangup' })); } };
  node.port.onmessage = (ev) => { if (ws.readyState === 1 && ws.bufferedAmount < 64000) ws.send(ev.data); };
  ws.onopen = () => { status.textContent = 'Connected: say something after the greeting.'; status.className = 'ok'; stop.disabled = false; };
  ws.onmessage = (ev) => {
    if (ev.data instanceof ArrayBuffer) {
      const pcm = new Int16Array(ev.data);
      const buf = ctx.createBuffer(1, pcm.length, 8000);
      const ch = buf.getChannelData(0);
      for (let i = 0; i < pcm.length; i++) ch[i] = pcm[i] / 32768;
      const src = ctx.createBufferSource();
      src.buffer = buf; src.connect(ctx.destination);
      next = Math.max(next, ctx.currentTime + 0.08);
      src.start(next); next += buf.duration;
      stats.robotSamples += pcm.length;
      src.onended = () => { stats.playedSamples += pcm.length; document.body.dataset.robotPlayedMs = Math.round(stats.playedSamples / 8); };
      return;
    }
    let m; try { m = JSON.parse(ev.data); } catch (_) { return; }
    if (m.type === 'hello') {
      status.textContent = `Connected to ${m.robot} (${m.language}): say something after the greeting.`;
    } else if (m.type === 'turn') {
      const t = m.turn;
      stats.turns.push(t);
      if (t.index > 0) scale = Math.max(scale, (t.timings && t.timings.turn_latency_ms) || 0);
      transcript.append(turnView({ index: t.index, caller_text: t.caller_transcript, robot_text: t.robot_reply, timings: t.timings }, scale));
    } else if (m.type === 'end') {
      finish(m.reason || 'ended');
    } else if (m.type === 'error') {
      stats.error = m.message;
      status.textContent = m.message; status.className = 'bad';
    }
  };
  ws.onclose = (ev) => finish(stats.error || ev.reason || 'connection closed');
  ws.onerror = () => { status.textContent = 'WebSocket error'; status.className = 'bad'; };
}

// --- routing -------------------------------------------------------------

async function route() {
  const full = location.hash.replace(/^#\/?/, '') || 'calls';
  const [hash, query] = full.split('?');
  const [view, arg] = hash.split('/');
  dropAudio();
  for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.getAttribute('href') === '#/' + view);
  if (view !== 'talk' && talk) talk.hangup();
  try {
    switch (view) {
      case 'calls': await (arg ? viewCall(decodeURIComponent(arg)) : viewCalls(query)); break;
      case 'leads': await viewLeads(); break;
      case 'queue': await viewQueue(); break;
      case 'health': await viewHealth(); break;
      case 'config': await viewConfig(); break;
      case 'talk': viewTalk(); break;
      default: show(el('h1', {}, 'Not found'), el('p', {}, el('a', { href: '#/calls' }, 'Calls')));
    }
    document.body.dataset.view = view;
  } catch (e) {
    if (e.message !== 'token needed') show(el('p', { class: 'bad' }, 'Cannot reach the box: ' + e.message));
  }
}

window.addEventListener('hashchange', route);
route();
