// Herald's debug console. No framework, no build step: it is embedded in the server binary.
//
// Everything the server sends is untrusted text (channel names, payloads, user agents come
// from clients): it is only ever put into the page as textContent, never as HTML.
'use strict';

const TOKEN_KEY = 'herald-console-token';
const MAX_ROWS = 1000;        // rows kept in the page; older ones are removed
const RENDER_MAX = 200;       // rows added per render; a bigger burst shows its newest
const RENDER_EVERY_MS = 100;  // renders at most this often, whatever the rate
const HELD_MAX = 5000;        // sightings kept while paused
const PREVIEW_CHARS = 120;    // payload shown before it is expanded

const GROUPS = {
  connected: 'connection', disconnected: 'connection',
  subscribed: 'subscription', unsubscribed: 'subscription',
  occupied: 'channel', vacated: 'channel',
  event: 'event',
  authorization: 'auth',
  member_added: 'presence', member_removed: 'presence',
};

const SOURCES = {
  redis: 'Redis',
  echo_api: 'HTTP API (laravel-echo-server)',
  pusher_api: 'HTTP API (Pusher)',
  whisper: 'whisper',
  client_event: 'client event',
  console: 'console',
  cluster: 'another node',
};

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  abort: null,
  paused: false,
  pending: [],
  held: [],
  renderTimer: null,
  dropped: { server: 0, burst: 0, paused: 0 },
  channelTimer: null,
};

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

function setStatus(kind, text) {
  const status = $('status');
  status.className = `status ${kind}`;
  status.dataset.state = kind;
  status.textContent = text;
}

// --- token -------------------------------------------------------------------------------

function tokenFromFragment() {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ''));
  const token = fragment.get('token');
  if (token) {
    // Out of the address bar (and screenshots, and the history) at once.
    history.replaceState(null, '', location.pathname + location.search);
  }
  return token;
}

function showLogin(message) {
  stop();
  $('main').hidden = true;
  $('login').hidden = false;
  $('pause').disabled = true;
  $('login-error').textContent = message || '';
  setStatus('off', 'not connected');
  $('token').focus();
}

function authorized(init = {}) {
  return { ...init, headers: { ...(init.headers || {}), Authorization: `Bearer ${state.token}` } };
}

// --- the live feed -----------------------------------------------------------------------

function stop() {
  if (state.abort) state.abort.abort();
  state.abort = null;
  clearInterval(state.channelTimer);
  state.channelTimer = null;
}

async function start() {
  stop();
  $('login').hidden = true;
  $('main').hidden = false;
  $('pause').disabled = false;
  refreshChannels();
  state.channelTimer = setInterval(refreshChannels, 2000);
  const abort = new AbortController();
  state.abort = abort;
  while (state.abort === abort) {
    setStatus('connecting', 'connecting…');
    try {
      const response = await fetch('/console/api/stream', authorized({ signal: abort.signal, cache: 'no-store' }));
      if (response.status === 401) {
        sessionStorage.removeItem(TOKEN_KEY);
        return showLogin('Wrong token: the server refused it.');
      }
      if (!response.ok) {
        const body = await response.json().catch(() => ({}));
        throw new Error(body.error || `the server answered ${response.status}`);
      }
      await read(response.body.getReader());
      if (state.abort === abort) setStatus('off', 'the server closed the feed; reconnecting…');
    } catch (error) {
      if (abort.signal.aborted) return;
      setStatus('off', `disconnected (${error.message}); reconnecting…`);
    }
    await new Promise((resolve) => setTimeout(resolve, 2000));
  }
}

async function read(reader) {
  const decoder = new TextDecoder();
  let buffered = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffered += decoder.decode(value, { stream: true });
    let newline;
    while ((newline = buffered.indexOf('\n')) >= 0) {
      const line = buffered.slice(0, newline);
      buffered = buffered.slice(newline + 1);
      if (line) receive(line);
    }
  }
}

function receive(line) {
  let sighting;
  try {
    sighting = JSON.parse(line);
  } catch {
    return;
  }
  switch (sighting.kind) {
    case 'watching':
      setStatus('live', 'live');
      return;
    case 'keepalive':
      return;
    case 'dropped':
      state.dropped.server += sighting.count;
      showNotice();
      return;
    default:
      state.pending.push(sighting);
      scheduleRender();
  }
}

// --- rendering ---------------------------------------------------------------------------

function scheduleRender() {
  if (state.renderTimer === null) {
    state.renderTimer = setTimeout(render, RENDER_EVERY_MS);
  }
}

function render() {
  state.renderTimer = null;
  let batch = state.pending;
  state.pending = [];
  if (state.paused) {
    state.held.push(...batch);
    if (state.held.length > HELD_MAX) {
      state.dropped.paused += state.held.length - HELD_MAX;
      state.held = state.held.slice(-HELD_MAX);
    }
    showNotice();
    return;
  }
  if (batch.length > RENDER_MAX) {
    state.dropped.burst += batch.length - RENDER_MAX;
    batch = batch.slice(-RENDER_MAX);
  }
  const fragment = document.createDocumentFragment();
  for (let i = batch.length - 1; i >= 0; i--) fragment.appendChild(row(batch[i]));
  const rows = $('rows');
  rows.insertBefore(fragment, rows.firstChild);
  while (rows.childElementCount > MAX_ROWS) rows.removeChild(rows.lastChild);
  showNotice();
}

function showNotice() {
  const { server, burst, paused } = state.dropped;
  const parts = [];
  if (state.paused) parts.push(`paused: ${state.held.length} waiting`);
  if (server) parts.push(`${server} dropped by the server (this page fell behind)`);
  if (burst) parts.push(`${burst} not shown (bursts show their newest ${RENDER_MAX})`);
  if (paused) parts.push(`${paused} dropped while paused`);
  const notice = $('notice');
  notice.hidden = parts.length === 0;
  notice.textContent = parts.join(' · ');
}

function time(at) {
  const date = new Date(at);
  return date.toLocaleTimeString([], { hour12: false }) + '.' + String(date.getMilliseconds()).padStart(3, '0');
}

function channelLabel(sighting) {
  if (!sighting.channel) return '';
  return sighting.app ? `${sighting.app} / ${sighting.channel}` : sighting.channel;
}

function row(sighting) {
  const tr = el('tr', `kind-${sighting.kind}`);
  if (sighting.kind === 'authorization' && !sighting.granted) tr.classList.add('refused');
  tr.dataset.kind = sighting.kind;
  tr.dataset.group = GROUPS[sighting.kind] || 'other';
  tr.dataset.channel = sighting.channel || '';
  tr.appendChild(el('td', 'time', time(sighting.at)));
  tr.appendChild(el('td', 'what', what(sighting)));
  tr.appendChild(el('td', 'channel', channelLabel(sighting)));
  const details = el('td', 'details');
  describe(sighting, details);
  tr.appendChild(details);
  tr.hidden = !visible(tr);
  return tr;
}

function what(s) {
  switch (s.kind) {
    case 'event': return `event · ${SOURCES[s.source] || s.source}`;
    case 'authorization': return s.granted ? 'authorized' : 'refused';
    case 'member_added': return 'member joined';
    case 'member_removed': return 'member left';
    default: return s.kind;
  }
}

function describe(s, td) {
  switch (s.kind) {
    case 'connected':
      td.append(el('b', null, s.socket), ` ${s.protocol} (${s.detail})`);
      if (s.address) td.append(` from ${s.address}`);
      if (s.user_agent) td.append(el('div', 'muted', s.user_agent));
      return;
    case 'disconnected':
      td.append(el('b', null, s.socket), ` ${s.reason}`);
      return;
    case 'subscribed':
    case 'unsubscribed':
      td.append(el('b', null, s.socket));
      return;
    case 'authorization':
      td.append(el('b', null, s.socket));
      if (s.reason) td.append(el('div', 'error', s.reason));
      return;
    case 'member_added':
    case 'member_removed':
      td.append('user ', el('b', null, JSON.stringify(s.user_id)));
      if (s.user_info !== undefined) td.append(' ', el('span', 'muted', JSON.stringify(s.user_info)));
      return;
    case 'event':
      td.append(el('b', 'event-name', s.name), ` → ${s.delivered} connection${s.delivered === 1 ? '' : 's'}`);
      if (s.except) td.append(el('span', 'muted', ` (not to ${s.except})`));
      td.append(payload(s));
      return;
    default:
      return;
  }
}

function payload(s) {
  const cut = s.data.length < s.data_bytes;
  const box = el('div', 'payload');
  const preview = s.data.length > PREVIEW_CHARS ? s.data.slice(0, PREVIEW_CHARS) + '…' : s.data;
  const code = el('code', null, preview);
  box.appendChild(code);
  if (s.data.length > PREVIEW_CHARS || cut) {
    const toggle = el('button', 'expand', 'expand');
    toggle.type = 'button';
    toggle.addEventListener('click', () => {
      const open = toggle.textContent === 'expand';
      toggle.textContent = open ? 'collapse' : 'expand';
      if (!open) {
        code.textContent = preview;
        box.querySelector('pre')?.remove();
        return;
      }
      code.textContent = '';
      let text = s.data;
      try { text = JSON.stringify(JSON.parse(s.data), null, 2); } catch { /* cut or not JSON */ }
      const pre = el('pre', null, text);
      if (cut) pre.appendChild(el('div', 'muted', `… cut at ${s.data.length} of ${s.data_bytes} bytes`));
      box.appendChild(pre);
    });
    box.appendChild(toggle);
  }
  return box;
}

// --- filters -----------------------------------------------------------------------------

function visible(tr) {
  const prefix = $('filter-channel').value;
  if (prefix && !tr.dataset.channel.startsWith(prefix)) return false;
  const box = document.querySelector(`.filters input[data-group="${tr.dataset.group}"]`);
  return !box || box.checked;
}

function applyFilters() {
  for (const tr of $('rows').children) tr.hidden = !visible(tr);
}

// --- channels and the test event ---------------------------------------------------------

async function refreshChannels() {
  if (!state.token) return;
  let body;
  try {
    const response = await fetch('/console/api/channels', authorized({ cache: 'no-store' }));
    if (response.status === 401) return showLogin('Wrong token: the server refused it.');
    body = await response.json();
  } catch {
    return;
  }
  $('counts').textContent = `${body.connections} connection${body.connections === 1 ? '' : 's'} · ${body.channels.length + body.more} channel${body.channels.length + body.more === 1 ? '' : 's'}`;
  $('channel-total').textContent = body.more ? `(${body.more} more not listed)` : '';
  const rows = document.createDocumentFragment();
  for (const channel of body.channels) {
    const tr = el('tr');
    tr.dataset.channel = channel.name;
    const name = el('td', 'channel', channel.app ? `${channel.app} / ${channel.name}` : channel.name);
    if (Array.isArray(channel.members)) {
      const list = el('ul', 'members');
      for (const member of channel.members) {
        const li = el('li', null, JSON.stringify(member.user_id));
        if (member.user_info !== undefined && member.user_info !== null) {
          li.appendChild(el('span', 'muted', ' ' + JSON.stringify(member.user_info)));
        }
        list.appendChild(li);
      }
      name.appendChild(list);
    } else if (channel.members && channel.members.error) {
      name.appendChild(el('div', 'error', channel.members.error));
    }
    tr.appendChild(name);
    tr.appendChild(el('td', 'count', channel.subscribers));
    rows.appendChild(tr);
  }
  $('channel-rows').replaceChildren(rows);
  const select = $('send-app');
  for (const app of body.isolated_apps) {
    if (![...select.options].some((o) => o.value === app)) select.appendChild(new Option(`isolated app ${app}`, app));
  }
}

async function sendEvent(submit) {
  submit.preventDefault();
  const result = $('send-result');
  result.className = '';
  result.textContent = 'sending…';
  const body = {
    app: $('send-app').value,
    channel: $('send-channel').value.trim(),
    name: $('send-name').value.trim(),
    // As the HTTP API takes it: a string that is JSON is sent as that JSON.
    data: $('send-data').value,
  };
  try {
    const response = await fetch('/console/api/events', authorized({
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
    }));
    const answer = await response.json().catch(() => ({}));
    if (!response.ok) {
      result.className = 'error';
      result.textContent = answer.error || `the server answered ${response.status}`;
      return;
    }
    result.textContent = `Sent: queued for ${answer.delivered} connection${answer.delivered === 1 ? '' : 's'} on this node.`;
  } catch (error) {
    result.className = 'error';
    result.textContent = error.message;
  }
}

// --- wiring ------------------------------------------------------------------------------

function togglePause() {
  state.paused = !state.paused;
  $('pause').textContent = state.paused ? 'Resume' : 'Pause';
  $('pause').setAttribute('aria-pressed', String(state.paused));
  if (!state.paused) {
    state.pending = state.held.concat(state.pending);
    state.held = [];
    render();
  } else {
    showNotice();
  }
}

function clearRows() {
  $('rows').replaceChildren();
  state.dropped = { server: 0, burst: 0, paused: 0 };
  state.held = [];
  showNotice();
}

document.addEventListener('DOMContentLoaded', () => {
  $('login-form').addEventListener('submit', (submit) => {
    submit.preventDefault();
    state.token = $('token').value;
    sessionStorage.setItem(TOKEN_KEY, state.token);
    $('token').value = '';
    start();
  });
  $('logout').addEventListener('click', () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = null;
    showLogin();
  });
  $('pause').addEventListener('click', togglePause);
  $('clear').addEventListener('click', clearRows);
  $('filter-channel').addEventListener('input', applyFilters);
  for (const box of document.querySelectorAll('.filters input[type=checkbox]')) {
    box.addEventListener('change', applyFilters);
  }
  $('send-form').addEventListener('submit', sendEvent);
  const fromFragment = tokenFromFragment();
  if (fromFragment) sessionStorage.setItem(TOKEN_KEY, fromFragment);
  state.token = fromFragment || sessionStorage.getItem(TOKEN_KEY);
  if (state.token) start();
  else showLogin();
});
