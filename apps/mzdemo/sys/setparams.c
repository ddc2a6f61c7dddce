/*
 * setparams for MZ-DEMO: writes MZ-DEMO/npbparams.h, the way NPB-MZ's sys/setparams does.
 *
 *   setparams mz-demo <nprocs> <class>   NPB3.3-MZ convention: the process count is baked in
 *                                        and the compiler is printed as F77
 *   setparams mz-demo <class>            NPB3.4-MZ convention: any process count, printed as FC
 *
 * Besides the problem size, the header holds the "Compile options" the program prints:
 * the text of F77 (or FC), FLINK, F_LIB, F_INC, FFLAGS, FLINKFLAGS and RAND in
 * ../config/make.def, read as NPB's setparams reads them (lines starting with '#' skipped,
 * the last "NAME = value" line wins, the value as written, "(none)" when empty, cut to 46
 * characters ending in "..."). The header is rewritten only when its text changes, so make
 * recompiles exactly when the class, the process count or make.def's options changed.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAKE_DEF "../config/make.def"
#define HEADER "npbparams.h"
#define LINE_MAX_LEN 1024
#define VALUE_MAX_LEN 46
#define NOPTIONS 7

static void fail(const char *message, const char *detail)
{
    fprintf(stderr, "setparams: %s%s\n", message, detail ? detail : "");
    exit(1);
}

/* The value of "label = value" on this line, or NULL when the line sets another variable. */
static const char *value_of(const char *line, const char *label)
{
    size_t n = strlen(label);
    if (strncmp(line, label, n) != 0)
        return NULL;
    line += n;
    if (*line != '=' && !isspace((unsigned char)*line))
        return NULL; /* a longer name: FLINK is not FLINKFLAGS */
    while (isspace((unsigned char)*line))
        line++;
    if (*line != '=')
        return NULL;
    line++;
    while (isspace((unsigned char)*line))
        line++;
    return line;
}

static void read_options(const char *labels[NOPTIONS], char values[NOPTIONS][LINE_MAX_LEN])
{
    char line[LINE_MAX_LEN];
    FILE *def = fopen(MAKE_DEF, "r");
    int i;

    if (def == NULL)
        fail("cannot read " MAKE_DEF ": write it first (see config/make.def.template)", NULL);
    for (i = 0; i < NOPTIONS; i++)
        strcpy(values[i], "(none)");
    while (fgets(line, sizeof line, def) != NULL) {
        line[strcspn(line, "\r\n")] = '\0';
        if (line[0] == '#')
            continue;
        for (i = 0; i < NOPTIONS; i++) {
            const char *value = value_of(line, labels[i]);
            size_t len;
            if (value == NULL || *value == '\0')
                continue;
            len = strlen(value);
            if (value[len - 1] == '\\')
                fail("continued lines are not allowed in " MAKE_DEF ": ", line);
            if (strchr(value, '\'') != NULL)
                fail("a quote in " MAKE_DEF " would break npbparams.h: ", line);
            strcpy(values[i], value);
            if (len > VALUE_MAX_LEN)
                strcpy(values[i] + VALUE_MAX_LEN - 3, "...");
        }
    }
    fclose(def);
}

int main(int argc, char *argv[])
{
    /* zones in x and y, points per zone in x and y, iterations, per class */
    static const struct { char name; int xz, yz, nx, ny, niter; } classes[] = {
        {'S', 4, 2, 24, 32, 100}, {'W', 4, 4, 64, 64, 200}, {'A', 4, 4, 256, 256, 400},
        {'B', 8, 8, 256, 256, 400}, {'C', 16, 16, 256, 256, 400},
    };
    const char *labels[NOPTIONS] = {"F77", "FLINK", "F_LIB", "F_INC", "FFLAGS", "FLINKFLAGS", "RAND"};
    char values[NOPTIONS][LINE_MAX_LEN];
    static char text[16384], old[16384];
    const char *klass = "", *nprocs_text = "0";
    long nprocs = 0;
    size_t used, oldlen = 0;
    unsigned c;
    int i, found = -1;
    FILE *fp;

    if (argc == 4) {
        nprocs_text = argv[2];
        klass = argv[3];
    } else if (argc == 3) {
        labels[0] = "FC"; /* NPB3.4-MZ renamed F77 to FC */
        klass = argv[2];
    } else {
        fail("usage: setparams mz-demo <nprocs> <class>  (NPB3.3-MZ style) or setparams mz-demo <class>", NULL);
    }
    if (strcmp(argv[1], "mz-demo") != 0)
        fail("unknown benchmark (this tree has: mz-demo): ", argv[1]);
    if (argc == 4) {
        char *end;
        nprocs = strtol(nprocs_text, &end, 10);
        if (*nprocs_text == '\0' || *end != '\0' || nprocs < 1)
            fail("NPROCS must be a whole number >= 1, got ", nprocs_text);
    }
    for (c = 0; c < sizeof classes / sizeof classes[0]; c++)
        if (strlen(klass) == 1 && classes[c].name == klass[0])
            found = (int)c;
    if (found < 0)
        fail("unknown class (use S, W, A, B or C): ", klass);
    read_options(labels, values);

    used = (size_t)snprintf(text, sizeof text,
        "! Written by sys/setparams: class %c, compiled processes %ld (0 = any).\n"
        "      character, parameter :: class_compiled = '%c'\n"
        "      integer, parameter :: nprocs_compiled = %ld\n"
        "      integer, parameter :: x_zones = %d, y_zones = %d\n"
        "      integer, parameter :: nx_zone = %d, ny_zone = %d\n"
        "      integer, parameter :: niter_default = %d\n"
        "      character(len=*), parameter :: fc_label = '%s'\n",
        classes[found].name, nprocs, classes[found].name, nprocs, classes[found].xz, classes[found].yz,
        classes[found].nx, classes[found].ny, classes[found].niter, labels[0]);
    for (i = 0; i < NOPTIONS; i++)
        used += (size_t)snprintf(text + used, sizeof text - used,
                                 "      character(len=*), parameter :: cs%d = '%s'\n", i + 1, values[i]);

    fp = fopen(HEADER, "r");
    if (fp != NULL) {
        oldlen = fread(old, 1, sizeof old, fp);
        fclose(fp);
        if (oldlen == used && memcmp(old, text, used) == 0)
            return 0; /* unchanged: keep its time stamp, make recompiles nothing */
    }
    fp = fopen(HEADER, "w");
    if (fp == NULL || fwrite(text, 1, used, fp) != used || fclose(fp) != 0)
        fail("cannot write " HEADER, NULL);
    return 0;
}
