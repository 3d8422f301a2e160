// Runs Python code under MicroPython's WebAssembly port: the interpreter the controller firmware
// is written for, so that tests/test_controller_micropython.py checks real MicroPython, not a subset.
//
//   node run.mjs MICROPYTHON_MJS FILE... < code.py
//
// MICROPYTHON_MJS is micropython.mjs of the npm package @micropython/micropython-webassembly-pyscript.
// Each FILE is copied flat into MicroPython's root directory (its working directory, on sys.path),
// as `mpremote cp` puts the firmware on the board. The code read from stdin then runs; what it
// prints is our stdout. An uncaught Python exception: its traceback on stderr, exit code 1.
import { readFileSync } from "node:fs";
import { basename } from "node:path";
import { pathToFileURL } from "node:url";

const [micropythonModule, ...files] = process.argv.slice(2);
if (!micropythonModule) {
    process.stderr.write("usage: node run.mjs MICROPYTHON_MJS FILE... < code.py\n");
    process.exit(2);
}
const { loadMicroPython } = await import(pathToFileURL(micropythonModule).href);
const printed = [];
// 16 MiB heap: the board traces the tests collect are far larger than the RP2040 ever holds.
const micropython = await loadMicroPython({
    heapsize: 16 * 1024 * 1024,
    linebuffer: false,
    stdout: (bytes) => printed.push(...bytes),
    stderr: (bytes) => process.stderr.write(bytes),
});
for (const file of files) {
    micropython.FS.writeFile("/" + basename(file), readFileSync(file));
}
let status = 0;
try {
    micropython.runPython(readFileSync(0, "utf8"));
} catch (error) {
    process.stderr.write(String(error.message ?? error) + "\n");
    status = 1;
}
process.stdout.write(Buffer.from(printed));
process.exitCode = status;
