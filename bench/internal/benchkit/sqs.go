package benchkit

import (
	"context"
	"fmt"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"
)

// SendBatch sends messages start to start+9 of n (fewer at the end) in one SendMessageBatch; message i's body is
// {"item":i}.
func SendBatch(ctx context.Context, q *sqs.Client, queueURL string, start, n int) error {
	var entries []sqstypes.SendMessageBatchRequestEntry
	for i := start; i < start+10 && i < n; i++ {
		entries = append(entries, sqstypes.SendMessageBatchRequestEntry{
			Id: aws.String(strconv.Itoa(i)), MessageBody: aws.String(fmt.Sprintf(`{"item":%d}`, i))})
	}
	out, err := q.SendMessageBatch(ctx, &sqs.SendMessageBatchInput{QueueUrl: aws.String(queueURL), Entries: entries})
	if err != nil {
		return fmt.Errorf("sending messages %d-%d: %w", start, start+len(entries)-1, err)
	}
	if len(out.Failed) > 0 {
		return fmt.Errorf("sending messages %d-%d: %d refused, first: %s", start, start+len(entries)-1,
			len(out.Failed), aws.ToString(out.Failed[0].Message))
	}
	return nil
}
