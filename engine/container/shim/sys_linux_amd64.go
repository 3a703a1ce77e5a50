package shim

const sysSetns = 308

const sysMemfd = 319
