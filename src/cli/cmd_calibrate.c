/* cglow calibrate: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_calibrate(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'calibrate' is not implemented yet");
}
