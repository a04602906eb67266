/* cglow report: placeholder until its issue lands. */
#include "cli/cli.h"

int cmd_report(int argc, char **argv)
{
    (void)argc; (void)argv;
    return cli_fail("'report' is not implemented yet");
}
