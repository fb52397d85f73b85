// localStorage, or null where merely reading it throws (site data blocked: Chrome raises a
// SecurityError on the property itself). Every reader and writer of the page copes with null,
// so the page works without storage; the URL still carries the state.
export function browserStorage() {
  try {
    return globalThis.localStorage ?? null;
  } catch {
    return null;
  }
}
