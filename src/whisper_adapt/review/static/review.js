// The review page: one clip at a time, keyboard only, every edit saved as a corpus revision.
// No framework and no build step: the page must work offline, served by `whisper-adapt review`.
'use strict';

const TOKEN = new URLSearchParams(location.search).get('token');
const SAVE_DELAY_MS = 500;   // after the last keystroke; with the request itself, under a second is at risk
const RETRY_MS = 1000;       // while the server is unreachable
const RATES = [0.5, 0.6, 0.75, 0.9, 1, 1.1, 1.25, 1.5, 1.75, 2];
const UNSURE = 0.5;          // same threshold as the server's queue flag (annotate.UNSURE_PROBABILITY)

const $ = (id) => document.getElementById(id);
const audio = $('audio'), textBox = $('text'), wave = $('wave');

const state = {
  queue: [], index: -1, clip: null, peaks: [],
  dirty: false, edits: 0, timer: null, retry: null, inflight: null, conflict: null,
  undo: [], doneHere: 0, openedAt: Date.now(), actions: Promise.resolve(),
};

// --- server -------------------------------------------------------------------------------------

async function api(method, path, body, keepalive = false) {
  const headers = {'Content-Type': 'application/json'};
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  const response = await fetch(path, {method, headers, keepalive, body: body && JSON.stringify(body)});
  const data = await response.json().catch(() => ({}));
  return {status: response.status, data};
}

function audioUrl(id) {
  return `audio/${encodeURIComponent(id)}` + (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : '');
}

// --- saving -------------------------------------------------------------------------------------

const pendingKey = (id) => `whisper-adapt-pending:${id}`;

function setSaveState(name, text) {
  const label = {saved: 'saved ✓', saving: 'saving…', unsaved: 'unsaved',
                 offline: 'NOT SAVED — server unreachable, retrying', conflict: 'NOT SAVED — conflict'}[name];
  $('save-state').dataset.state = name;
  $('save-state').textContent = text || label;
}

function onInput() {
  if (!state.clip) return;
  if (!state.dirty) pushUndo(state.clip.text, state.clip.status);  // one undo step per burst of typing
  state.dirty = true;
  state.edits += 1;
  // Kept in the browser until the server has it: a crash of either side loses at most this last second.
  keepPending(state.clip);
  setSaveState('unsaved');
  clearTimeout(state.timer);
  state.timer = setTimeout(() => save(), SAVE_DELAY_MS);
}

function keepPending(clip) {
  localStorage.setItem(pendingKey(clip.id), JSON.stringify({version: clip.version, text: textBox.value}));
}

// Saves are serialized: each carries the version the previous one returned.
async function save(status) {
  clearTimeout(state.timer);
  while (state.inflight) await state.inflight;
  const clip = state.clip;
  if (!clip || state.conflict) return !state.conflict;
  if (!state.dirty && (status === undefined || status === clip.status)) return true;
  state.inflight = send(clip, textBox.value, status);
  try { return await state.inflight; } finally { state.inflight = null; }
}

async function send(clip, text, status) {
  const edits = state.edits;
  const body = {text, version: clip.version};
  if (status) body.status = status;
  setSaveState('saving');
  let reply;
  try {
    reply = await api('PUT', `api/clips/${encodeURIComponent(clip.id)}`, body);
  } catch {
    reply = {status: 0, data: {}};  // unreachable: the server is down or restarting
  }
  if (reply.status === 200) {
    Object.assign(clip, reply.data);
    if (state.edits === edits) {
      state.dirty = false;
      localStorage.removeItem(pendingKey(clip.id));
    } else {  // typed on while this was in flight: the kept copy must build on the version just saved
      keepPending(clip);
    }
    setSaveState(state.dirty ? 'unsaved' : 'saved', state.dirty ? undefined : `saved ✓ v${clip.version}`);
    updateQueueEntry(clip);
    if (clip === state.clip) renderClipText();
    return true;
  }
  if (reply.status === 409) return showConflict(reply.data);
  if (reply.status === 0 || reply.status >= 500) {
    setSaveState('offline');
    clearTimeout(state.retry);
    state.retry = setTimeout(() => save(), RETRY_MS);  // the text only: an accept is repeated by hand
    return false;
  }
  setSaveState('conflict', `NOT SAVED — ${reply.status}: ${JSON.stringify(reply.data.detail)}`);
  return false;
}

function showConflict(data) {
  state.conflict = data;
  const box = $('conflict');
  box.hidden = false;
  box.textContent = `Someone else saved this clip (now version ${data.current_version}, ${data.current_status}): `
    + `「${data.current_text}」. Your text was not saved. Alt+L: load theirs · Alt+K: keep yours (overwrite).`;
  setSaveState('conflict');
  return false;
}

async function resolveConflict(keepMine) {
  const conflict = state.conflict;
  if (!conflict) return;
  state.conflict = null;
  $('conflict').hidden = true;
  if (keepMine) {
    state.clip.version = conflict.current_version;
    state.dirty = true;
    await save();
  } else {
    localStorage.removeItem(pendingKey(state.clip.id));
    state.dirty = false;
    await openClip(state.index, false);
  }
}

// The page may close at any moment: send what is unsaved while it still can.
window.addEventListener('pagehide', () => {
  if (state.dirty && state.clip && !state.conflict) {
    const body = {text: textBox.value, version: state.clip.version};
    api('PUT', `api/clips/${encodeURIComponent(state.clip.id)}`, body, true).catch(() => {});
  }
});

// --- queue --------------------------------------------------------------------------------------

function filters() {
  const params = new URLSearchParams();
  for (const name of ['status', 'recording', 'term']) {
    const value = $(`filter-${name}`).value;
    if (value) params.set(name, value);
  }
  return params;
}

async function loadQueue() {
  const {status, data} = await api('GET', `api/queue?${filters()}`);
  if (status !== 200) return message(`cannot load the queue (${status}: ${JSON.stringify(data.detail)})`);
  state.queue = data.clips;
  fillSelect($('filter-recording'), data.recordings);
  fillSelect($('filter-term'), data.terms);
  renderQueue();
  if (state.queue.length) await openClip(0, true);
  else message('no clips match these filters');
}

function fillSelect(select, values) {
  if (select.options.length > 1) return;
  for (const value of values) select.add(new Option(value, value));
}

function renderQueue() {
  const list = $('queue');
  list.replaceChildren(...state.queue.map((entry, i) => {
    const item = document.createElement('li');
    item.dataset.status = entry.status;
    item.className = i === state.index ? 'current' : '';
    item.title = `${entry.id} (${entry.recording})`;
    // Flags first, so a long text's ellipsis never hides them: ✎ a known misrecognition, ★ a term, ? unsure words.
    const flags = (entry.fixes ? '✎' : '') + (entry.terms.length ? '★' : '') + (entry.unsure ? '?' : '');
    item.append(Object.assign(document.createElement('span'), {className: 'flag', textContent: flags}),
                ` ${entry.text || '(empty)'}`);
    item.addEventListener('click', () => go(i));
    return item;
  }));
  const done = state.queue.filter((e) => e.status !== 'draft').length;
  $('progress').textContent = `${done} / ${state.queue.length} done`;
  list.children[state.index]?.scrollIntoView({block: 'nearest'});
}

function updateQueueEntry(clip) {
  const entry = state.queue.find((e) => e.id === clip.id);
  if (entry) Object.assign(entry, {status: clip.status, text: clip.text});
  renderQueue();
}

function renderRate() {
  const hours = (Date.now() - state.openedAt) / 3.6e6;
  $('rate').textContent = state.doneHere ? `${(state.doneHere / hours).toFixed(0)} clips/h` : '– clips/h';
}

// --- one clip -----------------------------------------------------------------------------------

async function go(index) {
  if (index < 0 || index >= state.queue.length) return message(index < 0 ? 'first clip' : 'last clip of the queue');
  if (!(await save())) return message('not moving on: this clip is not saved yet');
  await openClip(index, true);
}

async function openClip(index, play) {
  const id = state.queue[index].id;
  const {status, data} = await api('GET', `api/clips/${encodeURIComponent(id)}`);
  if (status !== 200) return message(`cannot load clip ${id} (${status})`);
  Object.assign(state, {index, clip: data, peaks: data.peaks, dirty: false, conflict: null});
  $('conflict').hidden = true;
  textBox.disabled = false;
  textBox.value = data.text;
  setSaveState('saved', `saved ✓ v${data.version}`);
  restorePending(data);
  renderClip();
  renderQueue();
  audio.src = audioUrl(id);
  audio.playbackRate = Number($('speed').dataset.rate || 1);
  textBox.focus();
  textBox.setSelectionRange(textBox.value.length, textBox.value.length);
  if (play) playFrom(0);
}

function restorePending(clip) {
  const pending = JSON.parse(localStorage.getItem(pendingKey(clip.id)) || 'null');
  if (!pending || pending.text === clip.text) return localStorage.removeItem(pendingKey(clip.id));
  // An edit this browser typed but never got saved: put it back and save it (a stale one meets the
  // server's version check and shows as a conflict rather than overwriting).
  textBox.value = pending.text;
  clip.version = pending.version;
  state.dirty = true;
  message('restored an edit that was not saved before the page closed');
  save();
}

function renderClip() {
  const clip = state.clip;
  $('clip-id').textContent = `${clip.id} · ${clip.recording}`;
  renderClipText();
  $('draft-words').replaceChildren(...clip.words.map((word) => {
    const span = document.createElement('span');
    span.className = 'word' + (word.probability < UNSURE ? ' unsure' : '');
    span.textContent = word.text;
    span.title = `p = ${word.probability.toFixed(2)}`;
    span.style.backgroundColor = `rgba(255, 120, 0, ${(1 - word.probability) * 0.8})`;
    span.addEventListener('click', () => playFrom(word.start_s));
    return span;
  }));
  if (!clip.words.length) $('draft-words').textContent = clip.draft_text ?? '(not drafted)';
  drawWave();
}

function renderClipText() {
  const clip = state.clip;
  $('clip-status').textContent = clip.status;
  $('clip-version').textContent = `v${clip.version}`;
  // Server offsets count code points; Array.from splits the same way (JS indices count UTF-16 units).
  const chars = Array.from(clip.text);
  const parts = [];
  let at = 0;
  for (const span of clip.spans) {
    parts.push(chars.slice(at, span.start).join(''));
    const mark = document.createElement('mark');
    mark.className = span.kind === 'term' ? 'term' : 'fix';
    mark.textContent = chars.slice(span.start, span.end).join('');
    mark.title = span.kind === 'term' ? 'glossary term' : `known misrecognition of ${span.term} (Alt+F)`;
    parts.push(mark);
    at = span.end;
  }
  parts.push(chars.slice(at).join(''));
  $('annotated').replaceChildren(...parts);
  const fix = firstFix();
  $('fix-hint').textContent = fix ? `Alt+F: ${chars.slice(fix.start, fix.end).join('')} → ${fix.term}` : '';
}

const firstFix = () => state.clip?.spans.find((s) => s.kind === 'misrecognition');

// --- actions ------------------------------------------------------------------------------------

function pushUndo(text, status) {
  state.undo.push({id: state.clip.id, text, status});
}

async function finish(status) {
  if (!state.clip) return;
  const before = {text: state.dirty ? textBox.value : state.clip.text, status: state.clip.status};
  if (!(await save(status))) return message(`not ${status}: the clip could not be saved`);
  state.undo.push({id: state.clip.id, ...before, counted: true});
  state.doneHere += 1;
  renderRate();
  const done = `${state.clip.id} ${status}`;
  const last = state.index + 1 >= state.queue.length;
  if (!last) await openClip(state.index + 1, true);
  message(last ? `${done}; end of the queue` : done);
}

async function fix() {
  if (!(await save())) return;
  const span = firstFix();
  if (!span) return message('no known misrecognition in this text');
  const chars = Array.from(textBox.value);
  pushUndo(textBox.value, state.clip.status);
  textBox.value = [...chars.slice(0, span.start), span.term, ...chars.slice(span.end)].join('');
  state.dirty = true;
  state.edits += 1;
  await save();
}

async function undo() {
  const step = state.undo.pop();
  if (!step) return message('nothing to undo');
  if (step.id !== state.clip.id) {
    if (!(await save())) return;
    const index = state.queue.findIndex((e) => e.id === step.id);
    if (index < 0) return message(`clip ${step.id} is not in this queue any more`);
    await openClip(index, true);
  }
  if (step.counted) state.doneHere -= 1;
  renderRate();
  textBox.value = step.text;
  state.dirty = true;
  state.edits += 1;
  await save(step.status);
  message(`undone on ${step.id}`);
}

// --- audio --------------------------------------------------------------------------------------

function playFrom(seconds) {
  audio.currentTime = Math.max(0, seconds);
  audio.play().catch(() => message('press Esc to play (the browser blocked autoplay)'));
}

function togglePlay() {
  if (audio.paused) audio.play().catch(() => {}); else audio.pause();
}

function changeRate(step) {
  const current = RATES.indexOf(audio.playbackRate);
  const next = RATES[Math.min(RATES.length - 1, Math.max(0, (current < 0 ? 4 : current) + step))];
  audio.playbackRate = next;
  $('speed').dataset.rate = next;
  $('speed').textContent = `${next.toFixed(2)}×`;
}

function drawWave() {
  const context = wave.getContext('2d');
  const {width, height} = wave;
  context.clearRect(0, 0, width, height);
  const peaks = state.peaks || [];
  const duration = audio.duration || state.clip?.duration_s || 1;
  const played = audio.currentTime / duration;
  peaks.forEach((peak, i) => {
    const x = (i / peaks.length) * width;
    const h = Math.max(1, Math.min(1, peak * 1.5) * height);
    context.fillStyle = i / peaks.length < played ? '#2557d6' : '#9aa5b8';
    context.fillRect(x, (height - h) / 2, Math.max(1, width / peaks.length), h);
  });
  context.fillStyle = '#b3261e';
  context.fillRect(played * width, 0, 2, height);
  $('time').textContent = `${audio.currentTime.toFixed(1)} / ${duration.toFixed(1)} s`;
  for (const [i, span] of Array.from($('draft-words').children).entries()) {
    const word = state.clip?.words[i];
    span.classList?.toggle('playing', !!word && !audio.paused && word.start_s <= audio.currentTime && audio.currentTime < word.end_s);
  }
}

function animate() {
  drawWave();
  if (!audio.paused) requestAnimationFrame(animate);
}

audio.addEventListener('play', animate);
audio.addEventListener('pause', drawWave);
audio.addEventListener('loadedmetadata', drawWave);
audio.addEventListener('seeked', drawWave);
wave.addEventListener('click', (event) => {
  const box = wave.getBoundingClientRect();
  playFrom(((event.clientX - box.left) / box.width) * (audio.duration || 0));
});

// --- keys ---------------------------------------------------------------------------------------

const SHORTCUTS = [
  {keys: 'Esc', audio: true, code: ['Escape'], run: togglePlay, what: 'play / pause'},
  {keys: 'Alt+R', audio: true, alt: true, code: ['KeyR'], run: () => playFrom(0), what: 'replay from the start'},
  {keys: 'Alt+B', audio: true, alt: true, code: ['KeyB'], run: () => playFrom(audio.currentTime - 2), what: 'replay the last 2 s'},
  {keys: 'Alt+,', audio: true, alt: true, code: ['Comma'], run: () => changeRate(-1), what: 'slower'},
  {keys: 'Alt+.', audio: true, alt: true, code: ['Period'], run: () => changeRate(1), what: 'faster'},
  {keys: 'Ctrl+Enter', ctrl: true, code: ['Enter', 'NumpadEnter'], run: () => finish('reviewed'), what: 'accept and next'},
  {keys: 'Alt+X', alt: true, code: ['KeyX'], run: () => finish('rejected'), what: 'reject (noise, not speech) and next'},
  {keys: 'Alt+F', alt: true, code: ['KeyF'], run: fix, what: 'fix the marked misrecognition'},
  {keys: 'Alt+Z', alt: true, code: ['KeyZ'], run: undo, what: 'undo the last change (also an accept)'},
  {keys: 'Ctrl+Z', native: true, what: 'undo typing inside the box'},
  {keys: 'Alt+↑', alt: true, code: ['ArrowUp'], run: () => go(state.index - 1), what: 'previous clip'},
  {keys: 'Alt+↓', alt: true, code: ['ArrowDown'], run: () => go(state.index + 1), what: 'next clip (without accepting)'},
  {keys: 'Alt+K', alt: true, code: ['KeyK'], run: () => resolveConflict(true), what: 'conflict: keep my text'},
  {keys: 'Alt+L', alt: true, code: ['KeyL'], run: () => resolveConflict(false), what: 'conflict: load theirs'},
];

document.addEventListener('keydown', (event) => {
  if (event.isComposing || event.keyCode === 229) return;  // the IME owns keys while composing
  const shortcut = SHORTCUTS.find((s) => !s.native && s.code.includes(event.code) && !!s.alt === event.altKey
    && !!s.ctrl === event.ctrlKey && !event.shiftKey && !event.metaKey);
  if (!shortcut) {
    // A transcript is one line (every export layout holds it so): plain Enter in the box adds nothing.
    if (event.target === textBox && ['Enter', 'NumpadEnter'].includes(event.code)) event.preventDefault();
    return;
  }
  event.preventDefault();
  if (shortcut.audio) return shortcut.run();
  // Saving and moving run one after another, in key order: two quick Alt+↓ move two clips, and an
  // accept never overtakes the save of the text typed before it.
  state.actions = state.actions.then(shortcut.run).catch((error) => message(`error: ${error}`));
}, true);

function renderShortcuts() {
  $('shortcuts').replaceChildren(...SHORTCUTS.map((s) => {
    const row = document.createElement('tr');
    const key = document.createElement('td');
    key.append(Object.assign(document.createElement('kbd'), {textContent: s.keys}));
    row.append(key, Object.assign(document.createElement('td'), {textContent: s.what}));
    return row;
  }));
}

function message(text) {
  $('message').textContent = text;
}

textBox.addEventListener('input', onInput);
for (const name of ['status', 'recording', 'term']) {
  $(`filter-${name}`).addEventListener('change', async () => {
    if (await save()) loadQueue(); else message('not switching: this clip is not saved yet');
  });
}
renderShortcuts();
setInterval(renderRate, 10000);
loadQueue();
