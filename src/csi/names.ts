// Names of the driver. Ferry registers under VSO's driver name by default so pod manifests written
// for VSO's protected secrets (`csi.driver: csi.vso.hashicorp.com`) work unchanged; the audience of
// the pod token kubelet passes follows the driver name, as in VSO's CSIDriver (vso-api.md §17).
export const DEFAULT_DRIVER_NAME = 'csi.vso.hashicorp.com';
export const API_GROUP_VERSION = 'secrets.hashicorp.com/v1beta1';
export const DRIVER_VERSION = '0.1.0';
