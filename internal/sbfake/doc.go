// Package sbfake runs a fake Azure Service Bus namespace for tests: a small AMQP 1.0 peer written in JavaScript on the
// npm package rhea (3.0.5, installed by `make prereqs` under $KUBEDISPATCH_CACHE/node/rhea-3.0.5), that the real
// azservicebus client talks to through a connection string with UseDevelopmentEmulator=true (plain amqp://, SASL
// ANONYMOUS), plus an HTTP control API to set it up and look inside.
//
// It is a test double only. Production code must never import it, and it must not be taken as a description of
// Service Bus beyond what its tests check: it keeps everything in memory, speaks no TLS, implements no sessions,
// deferral, scheduling, filters or peeking, and does not authorize by SAS rights (Listen/Send/Manage).
//
// What it does, each checked against azservicebus v1.11.0 by this package's tests:
//   - Entities exist only once created with [Control]: queues, and topics with subscriptions (a message sent to a
//     topic is copied to every subscription). Receive addresses are "<queue>" and "<topic>/Subscriptions/<sub>", each
//     also with "/$DeadLetterQueue"; names are case-insensitive.
//   - Peek-lock: a delivered message is locked for the entity's lock duration (default 30 s); the lock is enforced. A
//     message whose lock runs out goes back to the front with its delivery count raised, or to the dead-letter queue
//     with reason MaxDeliveryCountExceeded once it has been delivered maxDeliveryCount times (default 10). Locks
//     survive the receiver's link or connection: a receiver that goes away leaves its messages locked until they
//     expire, as on Service Bus.
//   - Settlement on the receive link (complete, abandon, dead-letter, release) and on the management link
//     (update-disposition, which the client uses for a ReceivedMessage it did not receive itself, built from a lock
//     token), and renew-lock.
//   - Every message gets a sequence number, enqueued and locked-until times, a lock token and a delivery count
//     (ReceivedMessage.DeliveryCount is 1 on the first delivery); body, message ID, application properties, content
//     type, correlation ID and subject are kept with their AMQP types.
//   - SAS: once a key is registered with [Control.SetKey], every put-token on $cbs must carry a SharedAccessSignature
//     signed with a registered key for the audience, and links need such a token; with no key registered any token is
//     accepted.
//   - A completion hook ([Control.SetHook]) is called, and answered, before any completion takes effect.
//
// How the azservicebus client reports the fake's errors (asserted by the tests):
//   - Unknown entity: the link attach is refused with AMQP condition amqp:not-found. The client does not turn that into
//     an *azservicebus.Error: ReceiveMessages and SendMessage return the bare *amqp.Error of github.com/Azure/go-amqp
//     (%T prints *encoding.Error), Condition "amqp:not-found", Description "The messaging entity
//     'sb://<host:port>/<name>' could not be found."; it is not wrapped in an *amqp.LinkError. Management requests on
//     an entity that is gone get status 404, which the client reports as *azservicebus.Error with Code CodeNotFound.
//   - Bad SAS key name or signature: put-token is answered with status 401, which the client reports as
//     *azservicebus.Error with Code CodeUnauthorizedAccess.
//   - Lost lock (expired, or the message already settled): on the receive link the settlement is answered with a
//     rejected outcome with condition com.microsoft:message-lock-lost, on the management link with status 410; both
//     come back as *azservicebus.Error with Code CodeLockLost. Note that go-amqp settles a received message once: a
//     second settlement of the same *ReceivedMessage on the receive link returns nil without reaching the fake.
//
// From a Go test, [Start] runs the fake for the length of the test. The local stack (e2e/cluster, Options.ServiceBus)
// runs it beside the other emulators and exposes its addresses as KUBEDISPATCH_SERVICEBUS_AMQP and
// KUBEDISPATCH_SERVICEBUS_CONTROL.
package sbfake
