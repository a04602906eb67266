/* cglow logprob: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_logprob(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'logprob' is not implemented yet");
}
