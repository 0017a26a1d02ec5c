/** The leak check of the shared suites (testing/leaks.ts), where tilth's own tests have always found it. */
export { leakCheck } from "../../testing/leaks.js";
