// Duration patterns shared by the CRD schemas and the runtime's validation, in a module without
// typebox so that the operator can check durations without loading the schemas (kinds.ts).

/** Go-style duration limited to one unit: `30s`, `1.5m`, `24h`. */
export const DURATION_PATTERN = '^([0-9]+(\\.[0-9]+)?(s|m|h))$';
/** Same as DURATION_PATTERN, plus days (`7d`); only VaultPKISecret.spec.ttl accepts it. */
export const DURATION_WITH_DAYS_PATTERN = '^([0-9]+(\\.[0-9]+)?(s|m|h|d))$';
