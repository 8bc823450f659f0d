// What the API tells the page before login (`GET /console/config.json`).

export interface ConsoleConfig {
  oidc: { authorize_url: string; token_url: string; client_id: string; scope: string } | null;
  temporal_ui: { url: string; namespace: string } | null;
}

let loaded: ConsoleConfig = { oidc: null, temporal_ui: null };

export async function loadConfig(): Promise<ConsoleConfig> {
  try {
    const response = await fetch("/console/config.json");
    if (response.ok) loaded = (await response.json()) as ConsoleConfig;
  } catch {
    /* keep the defaults: paste a token, no Web UI links */
  }
  return loaded;
}

export function config(): ConsoleConfig {
  return loaded;
}
