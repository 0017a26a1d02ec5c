import { transportConformance } from "./conformance.js";
import { cases } from "./util.js";

transportConformance(cases.tcp6);
