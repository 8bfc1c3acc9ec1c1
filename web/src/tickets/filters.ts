// The ticket list's view lives in the URL: filters and sort are query parameters with the
// names and spellings of `GET /api/v1/tickets`, so a link, a reload or a saved view shows the
// same list, and the query goes to the API as it is.

export interface ListView {
  project_id?: string;
  status: string[];
  priority: string[];
  assignee?: string;
  requester?: string;
  label?: string;
  due_before?: string;
  sort: string;
}

export const DEFAULT_SORT = "-created_at";

export const SORTS = [
  { value: "-created_at", label: "Newest first" },
  { value: "created_at", label: "Oldest first" },
  { value: "-updated_at", label: "Recently updated" },
  { value: "-priority", label: "Highest priority" },
  { value: "due_at", label: "Due soonest" },
];

const LIST_KEYS = ["status", "priority"] as const;
const SINGLE_KEYS = ["project_id", "assignee", "requester", "label", "due_before"] as const;

export function viewFromParams(params: URLSearchParams): ListView {
  const view: ListView = { status: [], priority: [], sort: params.get("sort") || DEFAULT_SORT };
  for (const key of LIST_KEYS) {
    view[key] = (params.get(key) ?? "")
      .split(",")
      .map((s) => s.trim())
      .filter(Boolean);
  }
  for (const key of SINGLE_KEYS) {
    const value = params.get(key)?.trim();
    if (value) view[key] = value;
  }
  return view;
}

/** The view as a query string, in a stable order, without defaults. */
export function paramsFromView(view: ListView): URLSearchParams {
  const params = new URLSearchParams();
  for (const key of SINGLE_KEYS) {
    const value = view[key];
    if (value) params.set(key, value);
  }
  for (const key of LIST_KEYS) {
    if (view[key].length) params.set(key, view[key].join(","));
  }
  if (view.sort && view.sort !== DEFAULT_SORT) params.set("sort", view.sort);
  return params;
}

/** The view as `GET /tickets` query parameters. */
export function apiQuery(view: ListView): Record<string, string> {
  return Object.fromEntries(paramsFromView(view).entries());
}

export function isFiltered(view: ListView): boolean {
  return SINGLE_KEYS.some((k) => view[k]) || LIST_KEYS.some((k) => view[k].length > 0);
}
