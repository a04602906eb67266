/* cglow train: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_train(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'train' is not implemented yet");
}
