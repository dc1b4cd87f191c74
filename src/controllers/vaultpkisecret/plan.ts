// The decision of VaultPKISecret (vso-api.md §6, §8): whether this run issues a certificate, and why,
// in VSO's order: InitialSync (no serial) → ForceSync (a referenced SecretTransformation, or the
// labels/annotations that templates read, changed) → ResourceUpdated (any spec change, incl.
// altNames: VSO #465) → InexistentDestination → SecretDataDrift (HMAC of the destination ≠
// status.secretMAC) → InRenewalWindow. The costlier checks are probes, asked only when reached.
import type { VaultPKISecretStatus } from '../../api/v1beta1/vaultpkisecret.ts';
import type { RenewalWindow } from '../../vault/pki.ts';

export type SyncReason =
  | 'InitialSync'
  | 'ForceSync'
  | 'ResourceUpdated'
  | 'InexistentDestination'
  | 'SecretDataDrift'
  | 'InRenewalWindow';

export interface IssueInput {
  status: VaultPKISecretStatus | undefined;
  generation: number;
  /** The template inputs outside the spec differ from those of the last issue. */
  fingerprintChanged: boolean;
  destinationExists: boolean;
  /** The destination's data no longer matches status.secretMAC. */
  drifted: () => Promise<boolean>;
  /** Where the current certificate stands in its lifetime. */
  window: () => RenewalWindow;
}

/** `reason` when a certificate must be issued; otherwise the window that says when to look again
 * (absent when an earlier check already decided). */
export async function decideIssue(i: IssueInput): Promise<{ reason?: SyncReason; window?: RenewalWindow }> {
  const s = i.status;
  if (!s?.serialNumber) return { reason: 'InitialSync' };
  if (i.fingerprintChanged) return { reason: 'ForceSync' };
  if (i.generation !== s.lastGeneration) return { reason: 'ResourceUpdated' };
  if (!i.destinationExists) return { reason: 'InexistentDestination' };
  if (await i.drifted()) return { reason: 'SecretDataDrift' };
  const window = i.window();
  return window.inWindow ? { reason: 'InRenewalWindow', window } : { window };
}
