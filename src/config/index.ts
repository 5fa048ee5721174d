// Configuration: schemas, defaults, loader, and the small value parsers (durations) every command
// shares. Precedence: flag > env (MTLS_*) > file > default.
export * from './duration.js';
export * from './yaml.js';
