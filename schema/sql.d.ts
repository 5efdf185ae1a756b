/** Committed SQL migrations are imported as text (`import x from './a.sql' with { type: 'text' }`). */
declare module '*.sql' {
  const text: string;
  export default text;
}
