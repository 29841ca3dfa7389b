// The dashboard's entry: sign-in, theme, and a hash router (#/, #/new, #/tasks/ID) so that the server serves one page.

import { auth, signedIn, takeTokenFromAddress } from './api.js';
import { h } from './dom.js';
import { renderOverview } from './overview.js';
import { renderTask } from './task.js';
import { renderNewTask } from './newtask.js';

const main = document.getElementById('main');
const live = document.getElementById('live');
const logout = document.getElementById('logout');
let view = null;

/** The header's connection indicator, for the view that follows a stream. */
function setLive(state) {
  live.dataset.state = state ?? '';
  live.textContent = { open: 'Live', reconnecting: 'Reconnecting…', closed: '', ended: '' }[state] ?? '';
}

function setTitle(text) {
  document.title = text ? `${text} · Corral` : 'Corral';
}

function markNavigation(name) {
  for (const link of document.querySelectorAll('[data-nav]')) {
    if (link.dataset.nav === name) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

function renderSignIn(invalid) {
  setTitle('Sign in');
  markNavigation(null);
  const input = h('input', { id: 'token', name: 'token', type: 'password', autocomplete: 'off', required: true, spellcheck: 'false' });
  const message = h('p', { id: 'token-error', class: 'error', role: 'alert' }, invalid ? 'The token is not valid.' : '');
  const form = h('form', { class: 'card narrow', 'aria-labelledby': 'signin-title' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', {}, 'This server needs its access token: the value given to ', h('code', {}, 'corral serve --token'),
      ' or ', h('code', {}, 'CORRAL_TOKEN'), '. It is kept for this browser tab only.'),
    h('label', { for: 'token' }, 'Token'),
    input,
    message,
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'primary' }, 'Sign in')));
  if (invalid) {
    input.setAttribute('aria-invalid', 'true');
    input.setAttribute('aria-describedby', 'token-error');
  }
  form.addEventListener('submit', async event => {
    event.preventDefault();
    auth.set(input.value.trim());
    if (await signedIn()) route();
    else renderSignIn(true);
  });
  main.replaceChildren(form);
  input.focus();
}

async function route() {
  view?.dispose?.();
  view = null;
  setLive(null);
  let ok;
  try {
    ok = await signedIn();
  } catch (error) {
    main.replaceChildren(h('p', { class: 'error', role: 'alert' }, 'The server cannot be reached: ' + error.message));
    return;
  }
  logout.hidden = !auth.token;
  if (!ok) {
    renderSignIn(false);
    return;
  }

  const hash = location.hash || '#/';
  const [path, query = ''] = hash.slice(1).split('?');
  const params = new URLSearchParams(query);
  const task = path.match(/^\/tasks\/([^/]+)$/);
  main.replaceChildren();
  if (task) {
    markNavigation(null);
    view = renderTask(main, decodeURIComponent(task[1]), { setLive, setTitle });
  } else if (path === '/new') {
    markNavigation('new');
    setTitle('New task');
    view = renderNewTask(main);
  } else {
    markNavigation('overview');
    setTitle('Overview');
    view = renderOverview(main, params, { setLive });
  }
}

function initTheme() {
  const button = document.getElementById('theme');
  const themes = ['system', 'light', 'dark'];
  let theme = localStorage.getItem('corral.theme') ?? 'system';
  const apply = () => {
    if (theme === 'system') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    button.textContent = `Theme: ${theme}`;
  };
  button.addEventListener('click', () => {
    theme = themes[(themes.indexOf(theme) + 1) % themes.length];
    localStorage.setItem('corral.theme', theme);
    apply();
  });
  apply();
}

takeTokenFromAddress();
initTheme();
auth.onUnauthorized(() => route());
logout.addEventListener('click', () => {
  auth.clear();
  route();
});
window.addEventListener('hashchange', () => {
  route();
  main.focus({ preventScroll: true });
});
route();
