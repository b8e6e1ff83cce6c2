import type { HttpClient } from './http.js';
import type { FsckResult, Readiness, ServiceVersion, SignedUrl, SignUrlOptions } from './types.js';

/** GET /api/v1/admin/fsck: a read-only check of the data dir (admin role); `verify` re-hashes every image. */
export function fsck(http: HttpClient, verify = false, signal?: AbortSignal): Promise<FsckResult> {
  return http.json<FsckResult>({ method: 'GET', path: '/api/v1/admin/fsck', query: { verify: verify || undefined }, signal });
}

/** POST /api/v1/signed-urls: a URL path for an image that works without a key until it expires. */
export function signUrl(http: HttpClient, options: SignUrlOptions, signal?: AbortSignal): Promise<SignedUrl> {
  return http.json<SignedUrl>({ method: 'POST', path: '/api/v1/signed-urls', json: options, signal });
}

/** GET /metrics: Prometheus text (admin role when keys are configured). */
export async function metrics(http: HttpClient, signal?: AbortSignal): Promise<string> {
  const res = await http.request({ method: 'GET', path: '/metrics', signal });
  return res.text();
}

/** GET /livez: resolves when the process answers. */
export function livez(http: HttpClient, signal?: AbortSignal): Promise<{ status: string; version: string }> {
  return http.json<{ status: string; version: string }>({ method: 'GET', path: '/livez', signal });
}

/** GET /api/v1/version: the service's name and version. */
export function getVersion(http: HttpClient, signal?: AbortSignal): Promise<ServiceVersion> {
  return http.json<ServiceVersion>({ method: 'GET', path: '/api/v1/version', signal });
}

/** GET /readyz: `ready` is false (not an error) when the store or the broker is not ready. */
export async function readyz(http: HttpClient, signal?: AbortSignal): Promise<Readiness> {
  // 503 is an answer here, and is not retried: the caller wants the current state.
  const res = await http.request({ method: 'GET', path: '/readyz', signal, accept: [503], retry: false });
  const body = (await res.json()) as Omit<Readiness, 'ready'>;
  return { ready: res.status === 200, ...body };
}

/** GET /openapi.json (not served in PRODMODE). */
export function getOpenApi(http: HttpClient, signal?: AbortSignal): Promise<Record<string, unknown>> {
  return http.json<Record<string, unknown>>({ method: 'GET', path: '/openapi.json', signal });
}

/** GET /asyncapi.json: the MQTT events' AsyncAPI document (not served in PRODMODE). */
export function getAsyncApi(http: HttpClient, signal?: AbortSignal): Promise<Record<string, unknown>> {
  return http.json<Record<string, unknown>>({ method: 'GET', path: '/asyncapi.json', signal });
}
