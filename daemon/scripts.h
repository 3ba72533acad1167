/* The Lua scripts certqd runs in Redis; see scripts.c for what each one does. */
#ifndef CERTQD_SCRIPTS_H
#define CERTQD_SCRIPTS_H

extern const char script_claim[];
extern const char script_accept[];
extern const char script_due[];
extern const char script_recover[];
extern const char script_release[];
extern const char script_mark[];

#endif
