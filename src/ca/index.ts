// The certificate authority: the offline CA kept as files today; issuance policy, provisioners,
// revocation, CRL/OCSP publication, audit and the HTTP API as the online service grows.
export * from './file-ca.js';
export * from './policy.js';
export * from './authority.js';
export * from './server.js';
export * from './client.js';
