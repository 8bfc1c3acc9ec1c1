// Choosing many tickets in a list: click toggles one, shift-click extends from the last one
// clicked to this one, `x` toggles the focused row.

export interface Selection {
  ids: ReadonlySet<string>;
  /** Index of the row last toggled: where a shift-click range starts. */
  anchor: number | null;
}

export const NONE: Selection = { ids: new Set(), anchor: null };

/** `order`: the ids as listed. A range takes the state the clicked row gets. */
export function toggle(sel: Selection, order: readonly string[], index: number, range: boolean): Selection {
  const id = order[index];
  if (id === undefined) return sel;
  const ids = new Set(sel.ids);
  const on = !ids.has(id);
  if (range && sel.anchor !== null) {
    const [from, to] = sel.anchor < index ? [sel.anchor, index] : [index, sel.anchor];
    for (const each of order.slice(from, to + 1)) {
      if (on) ids.add(each);
      else ids.delete(each);
    }
  } else if (on) {
    ids.add(id);
  } else {
    ids.delete(id);
  }
  return { ids, anchor: index };
}

/** Keeps only ids still listed (a refreshed list may have lost some). */
export function within(sel: Selection, order: readonly string[]): Selection {
  const listed = new Set(order);
  const ids = new Set([...sel.ids].filter((id) => listed.has(id)));
  return ids.size === sel.ids.size ? sel : { ids, anchor: null };
}

/** Without the ids given (those a bulk change got through). */
export function without(sel: Selection, done: readonly string[]): Selection {
  return { ids: new Set([...sel.ids].filter((id) => !done.includes(id))), anchor: sel.anchor };
}
