// The PKI core: keys, names, DER, certificate profiles, issuance, CSRs, chains, verification
// reasons, lint rules, CRLs. Pure: no network and no files; every other component builds on it.
export * from './der.js';
export * from './oids.js';
export * from './pem.js';
export * from './names.js';
export * from './spki.js';
export * from './keys.js';
export * from './certificate.js';
export * from './profiles.js';
export * from './issue.js';
export * from './csr.js';
export * from './reasons.js';
export * from './objects.js';
export * from './crl.js';
export * from './chain.js';
export * from './verify.js';
export * from './lint.js';
export * from './ocsp.js';
export * from './identity.js';
