/* cglow infer: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_infer(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'infer' is not implemented yet");
}
