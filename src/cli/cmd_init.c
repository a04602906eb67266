/* cglow init: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_init(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'init' is not implemented yet");
}
