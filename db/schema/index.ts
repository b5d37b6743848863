export * from './checks';
export * from './accounts';
export * from './runs';
