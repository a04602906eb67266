/* cglow synth-loglike: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_synth_loglike(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'synth-loglike' is not implemented yet");
}
