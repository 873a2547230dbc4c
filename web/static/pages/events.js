// Events page (#/events): search every stored event by camera, label, matched rule, words in
// the summary and time range; newest first, "Load more" pages on. Each card plays its clip
// and opens the packet inspector.
'use strict';

(function () {
  const V = window.Vigil;
  const { el, str, arr, obj, api } = V;
  const PAGE = 50;
  const filters = { camera: '', label: '', rule: '', q: '', since: '', until: '' };  // kept between visits

  function mount(root, _param, ctx) {
    const st = { cursor: null, gen: 0, seen: new Set() };
    const head = el('div', 'page-head');
    const count = el('span', 'note');
    head.append(el('h1', null, 'Events'), count, el('span', 'spacer'));
    root.append(head);

    const form = el('form', 'filters events-filter');
    form.id = 'events-filter';
    const camSel = V.select('camera', [['', 'all cameras'], ...V.cameraOptions()], filters.camera);
    const labelIn = V.input('label', 'search', filters.label, { placeholder: 'e.g. person', maxlength: '64', spellcheck: 'false' });
    const ruleIn = V.input('rule', 'search', filters.rule, { placeholder: 'rule id', maxlength: '64', spellcheck: 'false' });
    const qIn = V.input('q', 'search', filters.q, { placeholder: 'words in the summary', maxlength: '200' });
    qIn.id = 'events-q';
    const sinceIn = V.input('since', 'datetime-local', filters.since);
    const untilIn = V.input('until', 'datetime-local', filters.until);
    const go = V.button('Search', null, null, 'submit');
    go.id = 'events-search';
    form.append(V.field('Camera', camSel), V.field('Label', labelIn), V.field('Rule', ruleIn), V.field('Text', qIn),
      V.field('Since', sinceIn), V.field('Until', untilIn), go);
    root.append(form);
    const msg = el('div', 'page-msgs');
    const list = el('div', 'event-list');
    list.id = 'events-list';
    const more = V.button('Load more', 'ghost', () => V.fire(() => load(true)));
    more.hidden = true;
    const foot = el('div', 'list-foot');
    foot.append(more);
    root.append(msg, list, foot);

    form.addEventListener('submit', (e) => {
      e.preventDefault();
      Object.assign(filters, { camera: camSel.value, label: labelIn.value.trim(), rule: ruleIn.value.trim(), q: qIn.value.trim(),
        since: sinceIn.value, until: untilIn.value });
      V.fire(() => load(false));
    });

    async function load(append) {
      const gen = ++st.gen;
      const q = { camera: filters.camera, label: filters.label, rule: filters.rule, q: filters.q,
        since: V.fromLocalInput(filters.since), until: V.fromLocalInput(filters.until), limit: PAGE,
        cursor: append ? st.cursor : '' };
      if (!append) msg.replaceChildren(el('p', 'muted', 'Searching…'));
      more.disabled = true;
      try {
        const res = obj(await api.get('/api/events' + V.query(q)));
        if (!ctx.alive || gen !== st.gen) return;
        msg.replaceChildren();
        if (!append) { list.replaceChildren(); st.seen.clear(); }
        for (const ev of arr(res.items).filter(V.isObj)) {
          if (st.seen.has(String(ev.id))) continue;
          st.seen.add(String(ev.id));
          list.append(V.renderEvent(ev));
        }
        st.cursor = typeof res.next_cursor === 'string' && res.next_cursor ? res.next_cursor : null;
        more.hidden = !st.cursor;
        count.textContent = st.seen.size + (st.cursor ? '+ found' : ' found');
        if (!list.childElementCount) list.append(el('p', 'muted empty', 'No events match.'));
      } catch (e) {
        if (ctx.alive && gen === st.gen && !(e instanceof V.Unauthorized)) msg.replaceChildren(V.notice(V.errText(e, 'Search'), 'error'));
      } finally {
        more.disabled = false;
      }
    }
    V.fire(() => load(false));
  }

  V.pages.events = { view: 'events-view', nav: 'nav-events', title: 'Events', mount };
})();
