/*
 * main.c - the tmrun host: LuaJIT with libtmrun linked in.
 *
 *   tmrun                     list the bundled scripts, one line each
 *   tmrun NAME.lua [args...]  run NAME.lua from the current folder, else from scripts/
 *   tmrun -e 'lua code' [args...]
 *
 * The project root (lua/ and scripts/) is $TMRUN_HOME, else the source tree this
 * binary was built from, else the install prefix's share/tmrun.  package.path
 * gets root/lua first; scripts see the root as the global TMRUN_HOME and their
 * arguments in the usual `arg` table (arg[0] = script path).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

static const char *find_root(void)
{
    static char buf[4096];
    const char *env = getenv("TMRUN_HOME");
    if (env && *env) return env;
    snprintf(buf, sizeof buf, "%s/lua/tmrun", TMRUN_SOURCE_DIR);
    if (is_dir(buf)) return TMRUN_SOURCE_DIR;
    /* relocatable install: <prefix>/bin/tmrun -> <prefix>/share/tmrun */
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) {
            *slash = 0;
            snprintf(buf, sizeof buf, "%s/../share/tmrun", exe);
            if (is_dir(buf)) return buf;
        }
    }
    return TMRUN_INSTALL_DATADIR;
}

/* The first "-- " comment line of a script, as its one-line summary. */
static void script_summary(const char *path, char *out, size_t cap)
{
    out[0] = 0;
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "#!", 2) == 0) continue;
        if (strncmp(line, "-- ", 3) == 0) {
            line[strcspn(line, "\r\n")] = 0;
            snprintf(out, cap, "%s", line + 3);
        }
        break;
    }
    fclose(f);
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int list_scripts(const char *root)
{
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/scripts", root);
    DIR *d = opendir(dir);
    printf("usage: tmrun NAME.lua [args...]   (NAME.lua from the current folder, else bundled)\n\n");
    if (!d) {
        fprintf(stderr, "tmrun: no scripts folder at %s\n", dir);
        return 1;
    }
    char *names[512];
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < 512) {
        size_t len = strlen(e->d_name);
        if (len > 4 && strcmp(e->d_name + len - 4, ".lua") == 0) names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_str);
    printf("bundled scripts:\n");
    for (int i = 0; i < n; i++) {
        char path[4600], summary[512];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        script_summary(path, summary, sizeof summary);
        printf("  %-20s %s\n", names[i], summary);
        free(names[i]);
    }
    return 0;
}

static int traceback(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) msg = "(error object is not a string)";
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void set_paths(lua_State *L, const char *root)
{
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "path");
    lua_pushfstring(L, "%s/lua/?.lua;%s/lua/?/init.lua;%s", root, root, lua_tostring(L, -1));
    lua_setfield(L, -3, "path");
    lua_pop(L, 1);
    lua_pop(L, 1);
    lua_pushstring(L, root);
    lua_setglobal(L, "TMRUN_HOME");
}

/* arg[0] = script, arg[1..] = argv[first..] */
static void set_args(lua_State *L, const char *script, int argc, char **argv, int first)
{
    lua_createtable(L, argc - first, 1);
    lua_pushstring(L, script);
    lua_rawseti(L, -2, 0);
    for (int i = first; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i - first + 1);
    }
    lua_setglobal(L, "arg");
}

static int resolve_script(const char *root, const char *name, char *out, size_t cap)
{
    if (is_file(name)) {
        snprintf(out, cap, "%s", name);
        return 1;
    }
    if (strchr(name, '/')) return 0;
    snprintf(out, cap, "%s/scripts/%s", root, name);
    return is_file(out);
}

int main(int argc, char **argv)
{
    const char *root = find_root();
    if (argc < 2) return list_scripts(root);

    lua_State *L = luaL_newstate();
    if (!L) {
        fprintf(stderr, "tmrun: cannot create a Lua state (out of memory)\n");
        return 1;
    }
    luaL_openlibs(L);
    set_paths(L, root);
    lua_pushcfunction(L, traceback);
    int tb = lua_gettop(L);

    int rc;
    if (strcmp(argv[1], "-e") == 0) {
        if (argc < 3) {
            fprintf(stderr, "tmrun: -e needs a chunk of Lua\n");
            lua_close(L);
            return 2;
        }
        set_args(L, "-e", argc, argv, 3);
        rc = luaL_loadbuffer(L, argv[2], strlen(argv[2]), "=(command line)");
    } else {
        char path[4096];
        if (!resolve_script(root, argv[1], path, sizeof path)) {
            fprintf(stderr, "tmrun: no script %s here or in %s/scripts (run tmrun alone for the list)\n",
                    argv[1], root);
            lua_close(L);
            return 2;
        }
        set_args(L, path, argc, argv, 2);
        rc = luaL_loadfile(L, path);
    }
    if (rc == 0) rc = lua_pcall(L, 0, 0, tb);
    int status = 0;
    if (rc != 0) {
        fprintf(stderr, "tmrun: %s\n", lua_tostring(L, -1));
        status = 1;
    }
    lua_close(L);
    return status;
}
