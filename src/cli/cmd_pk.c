/* cglow pk: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_pk(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'pk' is not implemented yet");
}
