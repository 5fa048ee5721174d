// The agent: keeps each workload identity's key, certificate and trust bundle fresh on disk
// (enroll, renew over mTLS, atomic versioned files, reload hooks), and the Node helpers that follow it.
export * from './config.js';
export * from './schedule.js';
export * from './files.js';
export * from './trust.js';
export * from './hooks.js';
export * from './metrics.js';
export * from './agent.js';
export * from './follow.js';
