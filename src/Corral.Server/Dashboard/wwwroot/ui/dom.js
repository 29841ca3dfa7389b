// Building the page: elements from data (text only, never HTML: agent output is untrusted), and how values read.

/** h('a', {href: '#/', class: 'x', onclick: f}, 'text', child…): an element with attributes, listeners and children. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attributes ?? {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') element.className = value;
    else if (key === 'dataset') Object.assign(element.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') element.addEventListener(key.slice(2), value);
    else if (key === 'value') element.value = value;
    else if (value === true) element.setAttribute(key, '');
    else element.setAttribute(key, String(value));
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : String(child));
  }
  return element;
}

/** A definition list of [term, value, class?]; those whose value is null or undefined are left out. */
export function facts(pairs, className = 'facts') {
  const list = h('dl', { class: className });
  for (const [term, value, className] of pairs) {
    if (value === null || value === undefined || value === '') continue;
    list.append(h('div', { class: className }, h('dt', {}, term), h('dd', {}, value)));
  }
  return list;
}

export const STATUSES = ['queued', 'running', 'succeeded', 'failed', 'timedOut', 'cancelled', 'lost', 'interrupted'];

const STATUS_LABELS = { timedOut: 'timed out' };

export function statusLabel(status) {
  return STATUS_LABELS[status] ?? status;
}

export function isActive(status) {
  return status === 'queued' || status === 'running';
}

/** The status as a badge; the text is the status, the colour only repeats it. */
export function badge(status) {
  return h('span', { class: `badge s-${status}`, dataset: { status } }, statusLabel(status));
}

export function taskLink(id) {
  return h('a', { href: `#/tasks/${encodeURIComponent(id)}`, class: 'mono', title: id }, shortId(id));
}

export function shortId(id) {
  return id.length > 16 ? id.slice(0, 12) + '…' + id.slice(-4) : id;
}

const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function bytes(value) {
  if (value === null || value === undefined) return null;
  let n = Number(value);
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return `${unit === 0 ? n : n.toFixed(n < 10 ? 2 : 1)} ${units[unit]}`;
}

export function ms(value) {
  if (value === null || value === undefined) return null;
  const n = Number(value);
  if (n < 1) return `${n.toFixed(2)} ms`;
  if (n < 1000) return `${n < 10 ? n.toFixed(1) : Math.round(n)} ms`;
  const seconds = n / 1000;
  if (seconds < 60) return `${seconds.toFixed(seconds < 10 ? 2 : 1)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.round(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

export function usd(value) {
  if (value === null || value === undefined) return null;
  return '$' + Number(value).toFixed(value >= 1 ? 2 : 4);
}

export function between(from, to) {
  if (!from) return null;
  return ms(new Date(to ?? Date.now()) - new Date(from));
}

/** A timestamp as a <time>: the local time (date too when not today), the full ISO value as its title. */
export function time(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  const today = new Date().toDateString() === date.toDateString();
  const text = today
    ? date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' })
    : date.toLocaleString([], { year: 'numeric', month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
  return h('time', { datetime: iso, title: iso }, text);
}

/** An element whose text is the time elapsed since `iso`, kept current by tick(). */
export function elapsed(iso) {
  return h('span', { class: 'elapsed', dataset: { since: iso } }, between(iso));
}

/** Brings every elapsed() under `root` up to date. */
export function tick(root) {
  for (const element of root.querySelectorAll('[data-since]')) element.textContent = between(element.dataset.since);
}

export function visuallyHidden(text) {
  return h('span', { class: 'visually-hidden' }, text);
}

export function empty(text) {
  return h('p', { class: 'empty muted' }, text);
}
