// The page state in one place: a closed set of keys fixed when the store is made, read with
// get(key) (or the frozen snapshot `state`), changed only by set(patch), which tells every
// subscriber which keys changed. No DOM, no timers: runtime handles (the worker client,
// Plotly, timers) and computed results stay with their owners; what is here is what the
// page is showing and asking for (js/app.js lists the keys).
//
//   const store = createStore({ tab: "curve", requested: 0 });
//   const off = store.subscribe((changed, state, before) => { if (changed.includes("tab")) ... });
//   store.set({ tab: "sweeps" });   // -> ["tab"]; subscribers called with ["tab"]
//   store.set({ tabb: 1 });         // throws: unknown key (nothing changes)
//
// A key changes when its new value is not Object.is the old one (objects are replaced, never
// mutated: set a new object). A set made by a subscriber while others are being told is
// applied at once but told after the current round, so every subscriber sees the sets in order.

export function createStore(initial) {
  const keys = new Set(Object.keys(initial));
  let state = Object.freeze({ ...initial });
  const subscribers = [];
  const queue = [];
  let telling = false;

  function check(key) {
    if (!keys.has(key)) throw new Error(`store: unknown key ${JSON.stringify(key)} (known: ${[...keys].join(", ")})`);
  }

  function tell() {
    telling = true;
    try {
      while (queue.length) {
        const [changed, snapshot, before] = queue.shift();
        for (const fn of [...subscribers]) fn(changed, snapshot, before);
      }
    } finally {
      telling = false;
      queue.length = 0;
    }
  }

  return {
    get state() { return state; },
    get(key) {
      check(key);
      return state[key];
    },
    // patch: {key: value} of known keys -> the keys whose value changed (subscribers told)
    set(patch) {
      const entries = Object.entries(patch);
      for (const [k] of entries) check(k);
      const changed = entries.filter(([k, v]) => !Object.is(state[k], v)).map(([k]) => k);
      if (!changed.length) return changed;
      const before = state;
      state = Object.freeze({ ...state, ...patch });
      queue.push([changed, state, before]);
      if (!telling) tell();
      return changed;
    },
    // fn(changedKeys, state, stateBefore): after each set that changed something; returns the
    // function that unsubscribes it
    subscribe(fn) {
      subscribers.push(fn);
      return () => {
        const i = subscribers.indexOf(fn);
        if (i >= 0) subscribers.splice(i, 1);
      };
    },
  };
}

// Whether any of `keys` is among `changed` (a subscriber's filter).
export const touches = (changed, ...keys) => keys.some((k) => changed.includes(k));
