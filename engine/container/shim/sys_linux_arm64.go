package shim

const sysSetns = 268

const sysMemfd = 279
