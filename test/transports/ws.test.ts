import { transportConformance } from "../../testing/index.js";
import { cases } from "./util.js";

transportConformance(cases.ws);
transportConformance(cases.wss);
