// The overview: counts by status, running and queued tasks as they change (the server-wide feed, /v1/events), and
// the history a page at a time (the server pages with a cursor, so a long history costs one page per view).

import { agents as listAgents, follow, json } from './api.js';
import { STATUSES, badge, between, elapsed, empty, h, statusLabel, taskLink, tick, time, usd } from './dom.js';

const PAGE_SIZE = 25;
const ACTIVE_LIMIT = 200;

export function renderOverview(main, params, { setLive }) {
  const control = new AbortController();
  const filters = {
    status: params.get('status') ?? '',
    agent: params.get('agent') ?? '',
    node: params.get('node') ?? '',
    q: params.get('q') ?? '',
  };
  const active = new Map(); // id → summary of every queued or running task
  const truncated = { running: false, queued: false };
  const cursors = [null]; // cursors[n] opens page n
  let page = 0;
  let stats = null;
  let showNode = !!filters.node;
  let refreshTimer = null;
  let activeTimer = null;
  let loadingHistory = null;

  // --- Layout -------------------------------------------------------------------------------------------------------
  const counts = h('ul', { class: 'counts', 'aria-describedby': 'counts-note' });
  const runningBody = h('tbody');
  const queuedBody = h('tbody');
  const runningCount = h('span', { class: 'count' });
  const queuedCount = h('span', { class: 'count' });
  const historyBody = h('tbody');
  const historyHead = h('tr');
  const historyState = h('p', { class: 'muted small', role: 'status', 'aria-live': 'polite' });
  const newer = h('button', { type: 'button', onclick: () => goTo(page - 1) }, '← Newer');
  const older = h('button', { type: 'button', onclick: () => goTo(page + 1) }, 'Older →');
  const pageLabel = h('span', { class: 'muted' });

  const statusSelect = h('select', { id: 'f-status', name: 'status' },
    h('option', { value: '' }, 'Any status'),
    STATUSES.map(s => h('option', { value: s }, statusLabel(s))));
  statusSelect.value = filters.status;
  const agentSelect = h('select', { id: 'f-agent', name: 'agent' }, h('option', { value: '' }, 'Any agent'));
  const nodeInput = h('input', { id: 'f-node', name: 'node', type: 'text', value: filters.node, autocomplete: 'off', spellcheck: 'false' });
  const nodeField = h('div', { class: 'field', hidden: !showNode }, h('label', { for: 'f-node' }, 'Node'), nodeInput);
  const textInput = h('input', { id: 'f-q', name: 'q', type: 'search', value: filters.q, maxlength: 200, placeholder: 'id, prompt, command, result…' });

  const filterForm = h('form', { class: 'filters', role: 'search', 'aria-label': 'Filter the history' },
    h('div', { class: 'field' }, h('label', { for: 'f-status' }, 'Status'), statusSelect),
    h('div', { class: 'field' }, h('label', { for: 'f-agent' }, 'Agent'), agentSelect),
    nodeField,
    h('div', { class: 'field grow' }, h('label', { for: 'f-q' }, 'Text'), textInput),
    h('div', { class: 'field buttons' },
      h('button', { type: 'submit', class: 'primary' }, 'Filter'),
      h('button', { type: 'reset' }, 'Clear')));

  main.append(
    h('h1', {}, 'Overview'),
    h('section', { 'aria-labelledby': 'counts-title' },
      h('h2', { id: 'counts-title', class: 'visually-hidden' }, 'Tasks by status'),
      counts,
      h('p', { id: 'counts-note', class: 'visually-hidden' }, 'Each count links to the history filtered by that status.')),
    h('div', { class: 'columns' },
      h('section', { 'aria-labelledby': 'running-title', class: 'card' },
        h('h2', { id: 'running-title' }, 'Running ', runningCount),
        h('table', { class: 'table compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'Agent'),
            h('th', { scope: 'col' }, 'Started'), h('th', { scope: 'col' }, 'Running for'))),
          runningBody)),
      h('section', { 'aria-labelledby': 'queued-title', class: 'card' },
        h('h2', { id: 'queued-title' }, 'Queued ', queuedCount),
        h('table', { class: 'table compact' },
          h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Task'), h('th', { scope: 'col' }, 'Agent'),
            h('th', { scope: 'col' }, 'Waiting'), h('th', { scope: 'col' }, 'Why'))),
          queuedBody))),
    h('section', { 'aria-labelledby': 'history-title', class: 'card' },
      h('h2', { id: 'history-title' }, 'History'),
      filterForm,
      h('div', { class: 'scroll-x' },
        h('table', { class: 'table', id: 'history' },
          h('caption', { class: 'visually-hidden' }, 'Tasks, newest first'),
          h('thead', {}, historyHead),
          historyBody)),
      h('nav', { class: 'pager', 'aria-label': 'History pages' }, newer, pageLabel, older),
      historyState));

  // --- Counts -------------------------------------------------------------------------------------------------------
  function renderCounts() {
    const live = { queued: 0, running: 0 };
    for (const task of active.values()) live[task.status] = (live[task.status] ?? 0) + 1;
    counts.replaceChildren(...STATUSES.map(status => {
      // Queued and running are counted live, unless there were more than a list holds.
      const n = status in live && !truncated[status] ? live[status] : stats?.counts?.[status];
      return h('li', {},
        h('a', { href: `#/?status=${status}`, class: `count-card s-${status}`, 'aria-current': filters.status === status ? 'true' : null },
          h('span', { class: 'n' }, n ?? '–'),
          h('span', { class: 'label' }, statusLabel(status))));
    }));
  }

  // --- Running and queued -------------------------------------------------------------------------------------------
  function renderActive() {
    const tasks = [...active.values()];
    const running = tasks.filter(t => t.status === 'running').sort((a, b) => (a.startedAt ?? '').localeCompare(b.startedAt ?? ''));
    const queued = tasks.filter(t => t.status === 'queued').sort((a, b) => a.createdAt.localeCompare(b.createdAt));
    runningCount.textContent = `(${running.length})`;
    queuedCount.textContent = `(${queued.length})`;
    runningBody.replaceChildren(...(running.length
      ? running.map(t => h('tr', { dataset: { id: t.id } },
        h('td', {}, taskLink(t.id)), h('td', {}, agentCell(t)), h('td', {}, time(t.startedAt)), h('td', {}, elapsed(t.startedAt))))
      : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'Nothing is running.'))]));
    queuedBody.replaceChildren(...(queued.length
      ? queued.map(t => h('tr', { dataset: { id: t.id } },
        h('td', {}, taskLink(t.id)), h('td', {}, agentCell(t)), h('td', {}, elapsed(t.createdAt)), h('td', { class: 'muted' }, t.queueReason ?? 'waiting for a slot')))
      : [h('tr', {}, h('td', { colspan: 4, class: 'muted' }, 'The queue is empty.'))]));
    renderCounts();
  }

  function agentCell(task) {
    return task.node ? [task.agent, h('span', { class: 'muted' }, ' on ', task.node)] : task.agent;
  }

  async function loadActive() {
    const [running, queued] = await Promise.all(['running', 'queued'].map(status =>
      json(`/v1/tasks?status=${status}&limit=${ACTIVE_LIMIT}`, { signal: control.signal })));
    active.clear();
    truncated.running = running.nextCursor !== null;
    truncated.queued = queued.nextCursor !== null;
    for (const task of [...running.items, ...queued.items]) {
      if (task.status === 'running' || task.status === 'queued') active.set(task.id, task);
    }
    renderActive();
  }

  async function loadStats() {
    stats = await json('/v1/stats', { signal: control.signal });
    renderCounts();
  }

  // --- History ------------------------------------------------------------------------------------------------------
  function query(cursor) {
    const q = new URLSearchParams({ limit: String(PAGE_SIZE) });
    for (const [key, value] of Object.entries(filters)) if (value) q.set(key, value);
    if (cursor) q.set('cursor', cursor);
    return q;
  }

  function linkable() {
    const q = new URLSearchParams();
    for (const [key, value] of Object.entries(filters)) if (value) q.set(key, value);
    const text = q.toString();
    history.replaceState(history.state, '', '#/' + (text ? '?' + text : ''));
  }

  async function loadHistory() {
    const started = performance.now();
    const load = json('/v1/tasks?' + query(cursors[page]), { signal: control.signal });
    loadingHistory = load;
    const result = await load;
    if (loadingHistory !== load) return; // a newer load was started meanwhile
    const items = result.items;
    showNode = showNode || items.some(t => t.node);
    nodeField.hidden = !showNode;
    cursors[page + 1] = result.nextCursor;
    const columns = ['Task', 'Status', 'Agent', ...(showNode ? ['Node'] : []), 'Created', 'Duration', 'Cost', 'Error'];
    historyHead.replaceChildren(...columns.map(c => h('th', { scope: 'col' }, c)));
    historyBody.replaceChildren(...items.map(t => h('tr', { dataset: { id: t.id, status: t.status } },
      h('td', {}, taskLink(t.id)),
      h('td', {}, badge(t.status)),
      h('td', {}, t.agent),
      showNode ? h('td', {}, t.node ?? '') : null,
      h('td', {}, time(t.createdAt)),
      h('td', {}, t.startedAt ? (t.endedAt ? between(t.startedAt, t.endedAt) : elapsed(t.startedAt)) : ''),
      h('td', {}, usd(t.costUsd) ?? ''),
      h('td', { class: 'muted' }, t.error?.code ?? ''))));
    if (items.length === 0) {
      historyBody.append(h('tr', {}, h('td', { colspan: columns.length },
        empty(page === 0 && !Object.values(filters).some(Boolean) ? 'No tasks yet. Start one from “New task”.' : 'No task matches.'))));
    }
    newer.disabled = page === 0;
    older.disabled = !result.nextCursor;
    pageLabel.textContent = `Page ${page + 1}`;
    historyState.textContent = `${items.length} task${items.length === 1 ? '' : 's'} on this page · ${Math.round(performance.now() - started)} ms`;
  }

  function goTo(n) {
    if (n < 0 || (n > page && !cursors[n])) return;
    page = n;
    loadHistory().catch(report);
  }

  filterForm.addEventListener('submit', event => {
    event.preventDefault();
    filters.status = statusSelect.value;
    filters.agent = agentSelect.value;
    filters.node = nodeInput.value.trim();
    filters.q = textInput.value.trim();
    cursors.length = 1;
    page = 0;
    linkable();
    renderCounts();
    loadHistory().catch(report);
  });
  filterForm.addEventListener('reset', event => {
    // Cleared here and now, not after the form's own reset (a timer): a filter chosen right after Clear must not be
    // undone by it, and the fields' defaults are the filters the page opened with, not empty.
    event.preventDefault();
    for (const key of Object.keys(filters)) filters[key] = '';
    statusSelect.value = '';
    agentSelect.value = '';
    nodeInput.value = '';
    textInput.value = '';
    cursors.length = 1;
    page = 0;
    linkable();
    renderCounts();
    loadHistory().catch(report);
  });

  // --- Live ---------------------------------------------------------------------------------------------------------
  function scheduleRefresh() {
    if (refreshTimer) return;
    refreshTimer = setTimeout(() => {
      refreshTimer = null;
      loadStats().catch(report);
      if (page === 0) loadHistory().catch(report);
    }, 750);
  }

  function onFeed(event) {
    let task;
    try {
      task = JSON.parse(event.data);
    } catch {
      return;
    }
    if (event.name === 'task.ended' || !(task.status === 'queued' || task.status === 'running')) active.delete(task.id);
    else active.set(task.id, { ...active.get(task.id), ...task });
    // Drawn once per burst: a busy server sends many events a second.
    activeTimer ??= setTimeout(() => {
      activeTimer = null;
      renderActive();
    }, 100);
    scheduleRefresh();
  }

  function report(error) {
    if (error?.name === 'AbortError' || control.signal.aborted) return;
    historyState.textContent = 'Could not load: ' + error.message;
  }

  const feed = follow('/v1/events', {
    onEvent: onFeed,
    onState: state => {
      if (control.signal.aborted) return;
      setLive(state);
      // Connected (again): what happened while away is read afresh, the feed has no replay.
      if (state === 'open') Promise.all([loadActive(), loadStats()]).catch(report);
    },
  });

  listAgents().then(list => {
    for (const agent of list) agentSelect.append(h('option', { value: agent.agent }, agent.agent));
    agentSelect.value = filters.agent;
  }).catch(() => {});
  loadHistory().catch(report);
  renderActive();
  // The counts come from the database, which may take a moment longer than the feed: read them again now and then.
  let beat = 0;
  const clock = setInterval(() => {
    tick(main);
    if (++beat % 5 === 0) loadStats().catch(report);
  }, 1000);

  return {
    dispose() {
      control.abort();
      feed.close();
      clearInterval(clock);
      clearTimeout(refreshTimer);
      clearTimeout(activeTimer);
    },
  };
}
