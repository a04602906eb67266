/* cglow demo: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_demo(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'demo' is not implemented yet");
}
